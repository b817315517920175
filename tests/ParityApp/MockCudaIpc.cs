using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using Pippy.Runtime.Native;
using Pippy.Runtime.Transport;
using TorchSharp;
using static TorchSharp.torch;

namespace ParityApp;

/// <summary>
/// A mock of the CUDA runtime's IPC calls, for machines without a GPU (CI): "device" memory is a shared memory file
/// (memfd) on the CPU, its handle names the process and descriptor another process opens it by, as a real
/// cudaIpcMemHandle_t names an allocation; copies are synchronous memcpy, so events and streams only count their
/// calls. It runs the IPC path's handle caches and protocol on real ranks over real MPI; what it cannot show is the
/// GPU's ordering (events, streams), which bench/gpu/GpuCheck checks on a GPU. Linked into tests/Runtime too.
/// </summary>
internal sealed class MockCudaIpc : ICudaIpc
{
    private const long MemoryMagic = 0x4d4f434b4d454d31, EventMagic = 0x4d4f434b45564e31;
    private readonly Dictionary<IntPtr, SharedSegment> _allocated = new();
    private readonly Dictionary<IntPtr, SharedSegment> _opened = new();
    private long _nextHandle = 1;

    public string Name => "mock CUDA runtime (shared memory on the CPU)";
    public DeviceType DeviceType => DeviceType.CPU;
    public IntPtr ComputeStream => IntPtr.Zero;

    /// <summary>Makes the named call fail as the runtime would (cudaErrorInvalidResourceHandle), to test the messages.</summary>
    public Func<string, bool> Fail { get; set; } = _ => false;

    public int Allocations, Frees, MemoryExports, MemoryOpens, MemoryCloses, EventsCreated, EventsOpened, EventsDestroyed, Records, Waits, Copies;

    /// <summary>Allocations not freed, and mappings not closed.</summary>
    public int Live => _allocated.Count + _opened.Count;

    /// <summary>A buffer in a segment of its own, at an offset (as libtorch's allocator places a tensor inside a larger block).</summary>
    public Tensor Allocate(ScalarType dtype, long[] shape, int device)
    {
        long bytes = shape.Aggregate(1L, (a, b) => a * b) * ElementSize(dtype);
        var segment = SharedSegment.Create(BlockOffset + Math.Max(bytes, 1), "pippy-mock-cuda");
        _allocated[segment.Address] = segment;
        Allocations++;
        return TorchNative.Wrap(segment.Address + BlockOffset, dtype, shape).DetachFromDisposeScope();
    }

    public void Free(Tensor buffer, int device)
    {
        IntPtr start = TorchNative.DataPointer(buffer) - BlockOffset;
        buffer.Dispose();
        if (!_allocated.Remove(start, out var segment)) throw new InvalidOperationException("mock free of a buffer it did not allocate");
        segment.Dispose();
        Frees++;
    }

    /// <summary>Where the mock's buffers start in their segments, so that the offset the sender adds is tested.</summary>
    public const int BlockOffset = 512;

    public (byte[] Handle, long Offset) ExportMemory(IntPtr memory, int device)
    {
        Check("cudaIpcGetMemHandle");
        var segment = _allocated.Values.Single(s => (long)memory >= (long)s.Address && (long)memory < (long)s.Address + s.Length);
        MemoryExports++;
        return (Handle(MemoryMagic, Environment.ProcessId, segment.Descriptor, segment.Length), (long)memory - (long)segment.Address);
    }

    private static long ElementSize(ScalarType dtype)
    {
        using var probe = empty(0, dtype);
        return probe.ElementSize;
    }

    public IntPtr OpenMemory(byte[] handle, int device)
    {
        Check("cudaIpcOpenMemHandle");
        var values = MemoryMarshal.Cast<byte, long>(handle);
        if (values[0] != MemoryMagic) throw Failure("cudaIpcOpenMemHandle");
        var segment = SharedSegment.Open((int)values[1], (int)values[2], values[3]);
        _opened[segment.Address] = segment;
        MemoryOpens++;
        return segment.Address;
    }

    public void CloseMemory(IntPtr opened, int device)
    {
        if (!_opened.Remove(opened, out var segment)) throw new InvalidOperationException("mock cudaIpcCloseMemHandle of memory it did not open");
        segment.Dispose();
        MemoryCloses++;
    }

    public IntPtr CreateEvent(int device)
    {
        EventsCreated++;
        return (IntPtr)_nextHandle++;
    }

    public byte[] ExportEvent(IntPtr cudaEvent, int device)
    {
        Check("cudaIpcGetEventHandle");
        return Handle(EventMagic, Environment.ProcessId, cudaEvent, 0);
    }

    public IntPtr OpenEvent(byte[] handle, int device)
    {
        Check("cudaIpcOpenEventHandle");
        if (MemoryMarshal.Cast<byte, long>(handle)[0] != EventMagic) throw Failure("cudaIpcOpenEventHandle");
        EventsOpened++;
        return (IntPtr)_nextHandle++;
    }

    public void DestroyEvent(IntPtr cudaEvent, int device) => EventsDestroyed++;
    public IntPtr CreateStream(int device) => (IntPtr)_nextHandle++;
    public void DestroyStream(IntPtr stream, int device) { }
    public void Record(IntPtr cudaEvent, IntPtr stream, int device) => Records++;
    public void Wait(IntPtr stream, IntPtr cudaEvent, int device) => Waits++;
    public void Synchronize(IntPtr cudaEvent, int device) { }

    public void Copy(IntPtr destination, IntPtr source, long bytes, IntPtr stream, int device)
    {
        // Through a managed array: ParityApp is not compiled unsafe, and the tests' messages are small.
        var staging = new byte[bytes];
        Marshal.Copy(source, staging, 0, staging.Length);
        Marshal.Copy(staging, 0, destination, staging.Length);
        Copies++;
    }

    private void Check(string call)
    {
        if (Fail(call)) throw Failure(call);
    }

    private static CudaIpcException Failure(string call) => new(CudaIpcMessages.CallFailed(call, 400, "invalid resource handle"), 400);

    private static byte[] Handle(long magic, long pid, long descriptor, long length)
    {
        var bytes = new byte[64];
        var values = MemoryMarshal.Cast<byte, long>(bytes.AsSpan());
        values[0] = magic;
        values[1] = pid;
        values[2] = descriptor;
        values[3] = length;
        return bytes;
    }
}
