using System;
using Pippy.Runtime.Transport;
using TorchSharp;
using Xunit;

namespace Pippy.Tests.Runtime;

/// <summary>Every branch of the GPU transport's choice (a pure function: no GPU needed).</summary>
public class GpuTransportChoiceTests
{
    private static GpuTransportInputs Cuda(bool aware = false, bool sameHost = true, string? runtime = "libcudart.so.12", bool ipcWorks = true, string? forced = null, bool learned = true) =>
        new(DeviceType.CUDA, aware, sameHost, runtime, ipcWorks, forced, learned);

    [Fact]
    public void CpuTensorsTakeNoGpuPath()
    {
        var (path, reason) = GpuTransportChoice.Choose(new GpuTransportInputs(DeviceType.CPU, false, true, null, false));
        Assert.Equal(GpuTransport.NotOnGpu, path);
        Assert.Equal("tensors on the CPU", reason);
        (path, reason) = GpuTransportChoice.Choose(new GpuTransportInputs(DeviceType.CPU, false, true, null, false, "ipc"));
        Assert.Equal(GpuTransport.NotOnGpu, path);
        Assert.Contains("PIPPY_GPU_TRANSPORT=ipc applies to CUDA tensors only", reason);
    }

    [Fact]
    public void SameHostWithTheRuntimeAndWorkingHandlesChoosesIpc()
    {
        var (path, reason) = GpuTransportChoice.Choose(Cuda());
        Assert.Equal(GpuTransport.CudaIpc, path);
        Assert.Equal("same host, libcudart.so.12 found, MPI not CUDA-aware", reason);
        Assert.Equal("CUDA IPC", GpuTransportChoice.Describe(path));
    }

    [Fact]
    public void ACudaAwareMpiIsPreferredWithoutAnOverride()
    {
        var (path, reason) = GpuTransportChoice.Choose(Cuda(aware: true));
        Assert.Equal(GpuTransport.CudaAwareMpi, path);
        Assert.Equal("MPI is CUDA-aware; PIPPY_GPU_TRANSPORT=ipc to use CUDA IPC instead", reason);
    }

    [Theory]
    [InlineData(false, "libcudart.so.12", true, true, "MPI not CUDA-aware, peer on another host")]
    [InlineData(true, null, true, true, "MPI not CUDA-aware, no CUDA runtime library (libcudart) found")]
    [InlineData(true, "libcudart.so.13", false, true, "MPI not CUDA-aware, CUDA IPC handles did not open between the ranks")]
    [InlineData(true, "libcudart.so.13", true, false, "MPI not CUDA-aware, shapes not learned (PipelineOptions.LearnShapes is off)")]
    public void OtherwiseHostStagingSaysWhy(bool sameHost, string? runtime, bool ipcWorks, bool learned, string reason)
    {
        var choice = GpuTransportChoice.Choose(Cuda(sameHost: sameHost, runtime: runtime, ipcWorks: ipcWorks, learned: learned));
        Assert.Equal((GpuTransport.HostStaging, reason), choice);
    }

    [Fact]
    public void HostOverrideWinsOverEverything()
    {
        Assert.Equal((GpuTransport.HostStaging, "PIPPY_GPU_TRANSPORT=host"), GpuTransportChoice.Choose(Cuda(aware: true, forced: "host")));
        Assert.Equal((GpuTransport.HostStaging, "PIPPY_GPU_TRANSPORT=host"), GpuTransportChoice.Choose(Cuda(forced: " HOST ")));
    }

    [Fact]
    public void IpcOverrideWinsOverACudaAwareMpi()
    {
        var (path, reason) = GpuTransportChoice.Choose(Cuda(aware: true, forced: "ipc"));
        Assert.Equal(GpuTransport.CudaIpc, path);
        Assert.Equal("PIPPY_GPU_TRANSPORT=ipc, same host, libcudart.so.12 found, MPI is CUDA-aware", reason);
    }

    [Fact]
    public void MpiOverrideNeedsACudaAwareMpi()
    {
        Assert.Equal((GpuTransport.CudaAwareMpi, "PIPPY_GPU_TRANSPORT=mpi, MPI is CUDA-aware"), GpuTransportChoice.Choose(Cuda(aware: true, forced: "mpi")));
        var e = Assert.Throws<InvalidOperationException>(() => GpuTransportChoice.Choose(Cuda(forced: "mpi")));
        Assert.Contains("this MPI is not CUDA-aware", e.Message);
        Assert.Contains("PIPPY_GPU_TRANSPORT=ipc (ranks of one machine) or host", e.Message);
    }

    [Fact]
    public void IpcOverrideThatCannotBeHonouredSaysWhyAndTheFix()
    {
        var e = Assert.Throws<InvalidOperationException>(() => GpuTransportChoice.Choose(Cuda(forced: "ipc", sameHost: false)));
        Assert.Contains("the peer runs on another machine", e.Message);
        Assert.Contains("PIPPY_GPU_TRANSPORT=host", e.Message);
        e = Assert.Throws<InvalidOperationException>(() => GpuTransportChoice.Choose(Cuda(forced: "ipc", runtime: null)));
        Assert.Contains("no CUDA runtime library (libcudart.so.13, .so.12, .so.11.0) is loaded or loadable", e.Message);
        Assert.Contains("PIPPY_CUDART", e.Message);
        Assert.Contains("Set PIPPY_GPU_TRANSPORT=host", e.Message);
        e = Assert.Throws<InvalidOperationException>(() => GpuTransportChoice.Choose(Cuda(forced: "ipc", ipcWorks: false)));
        Assert.Contains("could not open each other's CUDA IPC handles", e.Message);
        Assert.Contains("Set PIPPY_GPU_TRANSPORT=host", e.Message);
        e = Assert.Throws<InvalidOperationException>(() => GpuTransportChoice.Choose(Cuda(forced: "ipc", learned: false)));
        Assert.Contains("PipelineOptions.LearnShapes is off", e.Message);
    }

    [Theory]
    [InlineData("nccl")]
    [InlineData("shm")]
    public void AnUnknownOverrideIsRefusedOnEveryDevice(string value)
    {
        var e = Assert.Throws<ArgumentException>(() => GpuTransportChoice.Choose(Cuda(forced: value)));
        Assert.Equal($"PIPPY_GPU_TRANSPORT={value} is not a GPU transport: use ipc, mpi or host (or unset it).", e.Message);
        Assert.Throws<ArgumentException>(() => GpuTransportChoice.Choose(new GpuTransportInputs(DeviceType.CPU, false, true, null, false, value)));
    }

    [Fact]
    public void AnEmptyOverrideChooses()
    {
        Assert.Equal(GpuTransport.CudaIpc, GpuTransportChoice.Choose(Cuda(forced: "  ")).Path);
    }
}
