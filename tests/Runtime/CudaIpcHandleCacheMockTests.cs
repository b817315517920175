using System;
using ParityApp;
using Pippy.Runtime.Transport;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Pippy.Tests.Runtime;

/// <summary>
/// The IPC handle caches (IpcExports on the receiver, IpcImports on the sender) with the CUDA runtime mocked
/// (MockCudaIpc: there is no GPU here; its "device" memory is shared memory on the CPU, opened through its handle as
/// another process would). What runs on a GPU only: bench/gpu/GpuCheck.
/// </summary>
public class CudaIpcHandleCacheMockTests
{
    private static readonly IpcKey Key = new(Peer: 1, Tag: 7, Phase: 0);
    private static TensorSignature Layout(params long[] shape) => TensorSignature.Of(ScalarType.Float32, shape, requiresGrad: false);

    [Fact]
    public void Mock_AHandleIsExportedOncePerBufferAndReusedForLaterSteps()
    {
        var mock = new MockCudaIpc();
        using var exports = new IpcExports(mock);
        var first = exports.Grant(Key, Layout(4, 8), device: 0);
        for (int step = 0; step < 5; step++)
        {
            var view = exports.Lend(first);
            Assert.Same(first, exports.GiveBack(view, out bool wasIpc));
            Assert.True(wasIpc);
        }
        var again = exports.Grant(Key, Layout(4, 8), device: 0); // learned again (a new epoch), same layout
        Assert.Same(first, again);
        Assert.Equal(2, again.Epoch);
        Assert.Equal(1, exports.Exported);
        Assert.Equal(1, mock.MemoryExports);
        Assert.Equal(1, mock.Allocations);
    }

    [Fact]
    public void Mock_ANewShapeMakesANewBufferAndFreesTheOldOne()
    {
        var mock = new MockCudaIpc();
        using var exports = new IpcExports(mock);
        var old = exports.Grant(Key, Layout(4, 8), 0);
        var replaced = exports.Grant(Key, Layout(5, 8), 0);
        Assert.NotSame(old, replaced);
        Assert.NotEqual(old.Generation, replaced.Generation);
        Assert.Equal(2, replaced.Epoch);
        Assert.Equal(2, exports.Exported);
        Assert.Equal(1, exports.Freed);
        Assert.Equal(1, mock.Frees);
        Assert.Equal(new long[] { 5, 8 }, replaced.View.shape);
    }

    [Fact]
    public void Mock_ABufferStillLentIsFreedOnlyWhenGivenBack()
    {
        var mock = new MockCudaIpc();
        using var exports = new IpcExports(mock);
        var old = exports.Grant(Key, Layout(4, 8), 0);
        var view = exports.Lend(old);
        exports.Grant(Key, Layout(2, 2), 0);
        Assert.Equal(0, exports.Freed); // the stage still reads it
        Assert.Null(exports.GiveBack(view, out bool wasIpc)); // retired: freed now, not offered again
        Assert.True(wasIpc);
        Assert.Equal(1, exports.Freed);
    }

    [Fact]
    public void Mock_ABufferCannotBeLentTwiceBeforeItIsGivenBack()
    {
        using var exports = new IpcExports(new MockCudaIpc());
        var buffer = exports.Grant(Key, Layout(3), 0);
        exports.Lend(buffer);
        var e = Assert.Throws<InvalidOperationException>(() => exports.Lend(buffer));
        Assert.Contains("still in use", e.Message);
    }

    [Fact]
    public void Mock_ATensorThatIsNotAnIpcBufferIsNotTakenBack()
    {
        using var exports = new IpcExports(new MockCudaIpc());
        using var other = zeros(3);
        Assert.Null(exports.GiveBack(other, out bool wasIpc));
        Assert.False(wasIpc);
    }

    [Fact]
    public void Mock_TheSenderOpensAHandleOnceAndWritesWhatTheReceiverReads()
    {
        var receiverMock = new MockCudaIpc();
        var senderMock = new MockCudaIpc();
        using var exports = new IpcExports(receiverMock);
        var buffer = exports.Grant(Key, Layout(2, 3), 0);
        using (var imports = new IpcImports(senderMock))
        {
            var opened = imports.Open(Key, buffer.Generation, buffer.Bytes, buffer.Offset, buffer.MemoryHandle, buffer.ConsumedHandle, 0);
            for (int step = 0; step < 3; step++)
                Assert.Same(opened, imports.Open(Key, buffer.Generation, buffer.Bytes, buffer.Offset, memoryHandle: null, eventHandle: null, 0));
            Assert.Equal(1, imports.Opened);
            Assert.Equal(MockCudaIpc.BlockOffset, buffer.Offset); // the buffer inside its block, as libtorch's allocator places it
            Assert.Equal(opened.Mapping + MockCudaIpc.BlockOffset, opened.Target);
            using var sent = arange(6, dtype: ScalarType.Float32).reshape(2, 3);
            senderMock.Copy(opened.Target, Pippy.Runtime.Native.TorchNative.DataPointer(sent), opened.Bytes, IntPtr.Zero, 0);
            Assert.True(exports.Lend(buffer).eq(sent).all().item<bool>());
        }
        Assert.Equal(1, senderMock.MemoryCloses); // closed on dispose
        Assert.Equal(0, senderMock.Live);
    }

    [Fact]
    public void Mock_ANewGenerationClosesTheOldMappingFirst()
    {
        var receiverMock = new MockCudaIpc();
        var senderMock = new MockCudaIpc();
        using var exports = new IpcExports(receiverMock);
        using var imports = new IpcImports(senderMock);
        var first = exports.Grant(Key, Layout(2), 0);
        imports.Open(Key, first.Generation, first.Bytes, first.Offset, first.MemoryHandle, first.ConsumedHandle, 0);
        var second = exports.Grant(Key, Layout(9), 0);
        var opened = imports.Open(Key, second.Generation, second.Bytes, second.Offset, second.MemoryHandle, second.ConsumedHandle, 0);
        Assert.Equal((2, 1), (imports.Opened, imports.Closed));
        Assert.Equal(second.Generation, opened.Generation);
        Assert.Equal(36, opened.Bytes);
    }

    [Fact]
    public void Mock_ANewGenerationWithoutHandlesIsRefused()
    {
        using var imports = new IpcImports(new MockCudaIpc());
        var e = Assert.Throws<InvalidOperationException>(() => imports.Open(Key, 3, 16, 0, null, null, 0));
        Assert.Contains("without its IPC handles", e.Message);
    }

    [Fact]
    public void Mock_AHandleThatDoesNotOpenSaysWhichBufferAndTheFix()
    {
        var receiverMock = new MockCudaIpc();
        using var exports = new IpcExports(receiverMock);
        var buffer = exports.Grant(Key, Layout(4), 0);
        var senderMock = new MockCudaIpc { Fail = call => call == "cudaIpcOpenMemHandle" };
        using var imports = new IpcImports(senderMock);
        var e = Assert.Throws<CudaIpcException>(() => imports.Open(Key, buffer.Generation, buffer.Bytes, buffer.Offset, buffer.MemoryHandle, buffer.ConsumedHandle, 0));
        Assert.StartsWith("Rank 1's receive buffer for the message with tag 7 (phase 0) of rank 1 could not be mapped here: cudaIpcOpenMemHandle failed with CUDA error 400 (invalid resource handle).", e.Message);
        Assert.Contains("both ranks must run on this machine and see the same GPUs", e.Message);
        Assert.EndsWith("Set PIPPY_GPU_TRANSPORT=host to send CUDA tensors through pinned host buffers instead.", e.Message);
        Assert.Equal(400, e.Code);
    }

    [Fact]
    public void Mock_AnEventThatDoesNotOpenClosesTheMemoryItOpened()
    {
        var receiverMock = new MockCudaIpc();
        using var exports = new IpcExports(receiverMock);
        var buffer = exports.Grant(Key, Layout(4), 0);
        var senderMock = new MockCudaIpc { Fail = call => call == "cudaIpcOpenEventHandle" };
        using var imports = new IpcImports(senderMock);
        var e = Assert.Throws<CudaIpcException>(() => imports.Open(Key, buffer.Generation, buffer.Bytes, buffer.Offset, buffer.MemoryHandle, buffer.ConsumedHandle, 0));
        Assert.Contains("cudaIpcOpenEventHandle failed", e.Message);
        Assert.Equal(0, senderMock.Live);
    }

    [Fact]
    public void Mock_DisposeFreesEveryBufferAndDestroysItsEvent()
    {
        var mock = new MockCudaIpc();
        using (var exports = new IpcExports(mock))
        {
            exports.Grant(Key, Layout(4), 0);
            exports.Grant(Key with { Tag = 8 }, Layout(4), 0);
            var lent = exports.Grant(Key with { Tag = 9 }, Layout(4), 0);
            exports.Lend(lent);
        }
        Assert.Equal(3, mock.Frees);
        Assert.Equal(3, mock.EventsDestroyed);
        Assert.Equal(0, mock.Live);
    }

    [Fact]
    public void Mock_AnExportThatFailsLeavesNothingBehind()
    {
        var mock = new MockCudaIpc { Fail = call => call == "cudaIpcGetMemHandle" };
        using var exports = new IpcExports(mock);
        var e = Assert.Throws<CudaIpcException>(() => exports.Grant(Key, Layout(4), 0));
        Assert.Contains("cudaIpcGetMemHandle failed", e.Message);
        Assert.Contains("cannot be shared with other processes", e.Message);
        Assert.Equal(0, mock.Live);
    }
}
