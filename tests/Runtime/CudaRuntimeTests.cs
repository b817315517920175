using System;
using System.Linq;
using Pippy.Runtime.Native;
using Pippy.Runtime.Transport;
using Xunit;

namespace Pippy.Tests.Runtime;

/// <summary>Finding libcudart at run time, and the messages where the GPU or the library is missing (real, on this CPU machine).</summary>
public class CudaRuntimeTests
{
    [Fact]
    public void TheRuntimeLibtorchLoadedComesFirstThenItsFoldersThenTheSonames()
    {
        var candidates = CudaRuntimeLocator.Candidates(null, new[]
        {
            "/usr/lib/libc.so.6",
            "/venv/lib/python3.12/site-packages/torch/lib/libtorch_cuda.so",
            "/venv/lib/python3.12/site-packages/nvidia/cu13/lib/libcudart.so.13",
        });
        Assert.Equal("/venv/lib/python3.12/site-packages/nvidia/cu13/lib/libcudart.so.13", candidates[0]);
        Assert.Equal("/venv/lib/python3.12/site-packages/torch/lib/libcudart.so.13", candidates[1]);
        Assert.Contains("/venv/lib/python3.12/site-packages/nvidia/cuda_runtime/lib/libcudart.so.12", candidates);
        Assert.Equal(CudaRuntimeLocator.Sonames, candidates.TakeLast(4));
    }

    [Fact]
    public void TheHashedCopyInLibtorchsArchiveCountsAsTheRuntime()
    {
        var candidates = CudaRuntimeLocator.Candidates(null, new[] { "/nuget/libtorch-cuda/runtimes/linux-x64/native/libcudart-9335f6a2.so.12", "/usr/lib/libcudart_static.a" });
        Assert.Equal("/nuget/libtorch-cuda/runtimes/linux-x64/native/libcudart-9335f6a2.so.12", candidates[0]);
        Assert.DoesNotContain("/usr/lib/libcudart_static.a", candidates);
    }

    [Fact]
    public void TheOverrideComesBeforeEverything()
    {
        var candidates = CudaRuntimeLocator.Candidates(" /opt/cuda/lib64/libcudart.so.12 ", Array.Empty<string>());
        Assert.Equal("/opt/cuda/lib64/libcudart.so.12", candidates[0]);
        Assert.Equal(CudaRuntimeLocator.Sonames, candidates.Skip(1));
    }

    [Fact]
    public void FindTakesTheFirstThatLoads()
    {
        Assert.Equal(("b", (IntPtr)2), CudaRuntimeLocator.Find(new[] { "a", "b", "c" }, name => name == "a" ? IntPtr.Zero : (IntPtr)(name[0] - 'a' + 1)));
        Assert.Null(CudaRuntimeLocator.Find(new[] { "a" }, _ => IntPtr.Zero));
    }

    /// <summary>Without a GPU (CI), loading the runtime for IPC says so, and how to run anyway; with one, it loads.</summary>
    [Fact]
    public void WithoutAGpuLoadingTheRuntimeSaysTheGpuIsMissingAndTheFix()
    {
        if (TorchSharp.torch.cuda.is_available())
        {
            Assert.NotNull(CudaRuntime.Load());
            return;
        }
        var e = Assert.Throws<CudaIpcException>(() => CudaRuntime.Load());
        Assert.Contains("CUDA IPC needs a CUDA device, and torch.cuda.is_available() is false here", e.Message);
        Assert.Contains("Set PIPPY_GPU_TRANSPORT=host", e.Message);
    }

    /// <summary>TryLoad finds a runtime exactly where one of the sonames loads (none on CI's machine: then null, and Build stages through the host).</summary>
    [Fact]
    public void TryLoadFindsARuntimeExactlyWhereOneLoads()
    {
        bool loadable = CudaRuntimeLocator.Find(CudaRuntimeLocator.Sonames, n => System.Runtime.InteropServices.NativeLibrary.TryLoad(n, out var h) ? h : IntPtr.Zero) is not null;
        Assert.Equal(loadable, CudaRuntime.TryLoad() is not null);
    }
}
