using System;
using System.IO;
using System.Runtime.InteropServices;
using Pippy.Runtime.Transport;
using TorchSharp;
using static TorchSharp.torch;

namespace Pippy.Runtime.Native
{
    /// <summary>
    /// The IPC path's CUDA runtime calls, bound at run time to the libcudart that <see cref="CudaRuntimeLocator"/>
    /// finds (function pointers, not DllImport: the library's name is known only then), and one driver call
    /// (cuMemGetAddressRange, libcuda.so.1, which every CUDA driver installs). Every failed call throws a
    /// <see cref="CudaIpcException"/> whose message names the call, the error and the fix. Not run on the CPU machines
    /// of CI: bench/gpu/GpuCheck is where it runs.
    /// </summary>
    internal sealed unsafe class CudaRuntime : ICudaIpc
    {
        private const uint EventDisableTiming = 0x02, EventInterprocess = 0x04;
        private const uint StreamNonBlocking = 0x01;
        private const uint IpcLazyEnablePeerAccess = 0x01;
        private const int MemcpyDeviceToDevice = 3;
        private const int HandleBytes = 64;

        /// <summary>cudaIpcMemHandle_t and cudaIpcEventHandle_t: 64 opaque bytes, passed by value to the Open calls.</summary>
        [StructLayout(LayoutKind.Sequential, Size = HandleBytes)]
        private struct IpcHandle
        {
            public fixed byte Bytes[HandleBytes];
        }

        private readonly delegate* unmanaged<int, int> _setDevice;
        private readonly delegate* unmanaged<IntPtr*, nuint*, IntPtr, int> _memGetAddressRange;
        private readonly delegate* unmanaged<IpcHandle*, IntPtr, int> _ipcGetMemHandle;
        private readonly delegate* unmanaged<IntPtr*, IpcHandle, uint, int> _ipcOpenMemHandle;
        private readonly delegate* unmanaged<IntPtr, int> _ipcCloseMemHandle;
        private readonly delegate* unmanaged<IntPtr*, uint, int> _eventCreateWithFlags;
        private readonly delegate* unmanaged<IpcHandle*, IntPtr, int> _ipcGetEventHandle;
        private readonly delegate* unmanaged<IntPtr*, IpcHandle, int> _ipcOpenEventHandle;
        private readonly delegate* unmanaged<IntPtr, int> _eventDestroy;
        private readonly delegate* unmanaged<IntPtr, IntPtr, int> _eventRecord;
        private readonly delegate* unmanaged<IntPtr, int> _eventSynchronize;
        private readonly delegate* unmanaged<IntPtr, IntPtr, uint, int> _streamWaitEvent;
        private readonly delegate* unmanaged<IntPtr*, uint, int> _streamCreateWithFlags;
        private readonly delegate* unmanaged<IntPtr, int> _streamDestroy;
        private readonly delegate* unmanaged<IntPtr, IntPtr, nuint, int, IntPtr, int> _memcpyAsync;
        private readonly delegate* unmanaged<int, IntPtr> _getErrorString;

        private CudaRuntime(string name, IntPtr library, IntPtr driver)
        {
            Name = Path.GetFileName(name);
            IntPtr Export(string symbol) => NativeLibrary.TryGetExport(library, symbol, out IntPtr address)
                ? address
                : throw new CudaIpcException($"{name} has no {symbol}: it is not a CUDA runtime this path can use. Set {CudaIpcMessages.CudaIpcRuntimeVariable} to libtorch's libcudart, or {GpuTransportChoice.Variable}=host.");
            _setDevice = (delegate* unmanaged<int, int>)Export("cudaSetDevice");
            _memGetAddressRange = NativeLibrary.TryGetExport(driver, "cuMemGetAddressRange_v2", out IntPtr range)
                ? (delegate* unmanaged<IntPtr*, nuint*, IntPtr, int>)range
                : throw new CudaIpcException($"The CUDA driver (libcuda.so.1) has no cuMemGetAddressRange_v2. Set {GpuTransportChoice.Variable}=host.");
            _ipcGetMemHandle = (delegate* unmanaged<IpcHandle*, IntPtr, int>)Export("cudaIpcGetMemHandle");
            _ipcOpenMemHandle = (delegate* unmanaged<IntPtr*, IpcHandle, uint, int>)Export("cudaIpcOpenMemHandle");
            _ipcCloseMemHandle = (delegate* unmanaged<IntPtr, int>)Export("cudaIpcCloseMemHandle");
            _eventCreateWithFlags = (delegate* unmanaged<IntPtr*, uint, int>)Export("cudaEventCreateWithFlags");
            _ipcGetEventHandle = (delegate* unmanaged<IpcHandle*, IntPtr, int>)Export("cudaIpcGetEventHandle");
            _ipcOpenEventHandle = (delegate* unmanaged<IntPtr*, IpcHandle, int>)Export("cudaIpcOpenEventHandle");
            _eventDestroy = (delegate* unmanaged<IntPtr, int>)Export("cudaEventDestroy");
            _eventRecord = (delegate* unmanaged<IntPtr, IntPtr, int>)Export("cudaEventRecord");
            _eventSynchronize = (delegate* unmanaged<IntPtr, int>)Export("cudaEventSynchronize");
            _streamWaitEvent = (delegate* unmanaged<IntPtr, IntPtr, uint, int>)Export("cudaStreamWaitEvent");
            _streamCreateWithFlags = (delegate* unmanaged<IntPtr*, uint, int>)Export("cudaStreamCreateWithFlags");
            _streamDestroy = (delegate* unmanaged<IntPtr, int>)Export("cudaStreamDestroy");
            _memcpyAsync = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, IntPtr, int>)Export("cudaMemcpyAsync");
            _getErrorString = (delegate* unmanaged<int, IntPtr>)Export("cudaGetErrorString");
        }

        /// <summary>
        /// The runtime libtorch uses, or an exception saying what is missing: a GPU (libtorch sees none), or libcudart.
        /// Starts libtorch's CUDA first, so that its libcudart is mapped and found.
        /// </summary>
        public static CudaRuntime Load()
        {
            if (!cuda.is_available()) throw new CudaIpcException(CudaIpcMessages.GpuMissing());
            return TryLoad() ?? throw new CudaIpcException(CudaIpcMessages.RuntimeMissing(GpuTransportChoice.Variable));
        }

        /// <summary>The runtime, or null when no libcudart loads (the caller says so and stages through the host).</summary>
        public static CudaRuntime? TryLoad() =>
            CudaRuntimeLocator.Locate() is { } found && NativeLibrary.TryLoad("libcuda.so.1", out IntPtr driver) ? new CudaRuntime(found.Name, found.Handle, driver) : null;

        public string Name { get; }
        public DeviceType DeviceType => DeviceType.CUDA;
        public IntPtr ComputeStream => IntPtr.Zero;

        public Tensor Allocate(ScalarType dtype, long[] shape, int device) =>
            empty(shape, dtype, new Device(DeviceType.CUDA, device)).DetachFromDisposeScope();

        public void Free(Tensor buffer, int device) => buffer.Dispose();

        public (byte[] Handle, long Offset) ExportMemory(IntPtr memory, int device)
        {
            On(device);
            // libtorch's allocator hands out parts of larger blocks; a handle maps the whole block, at its base.
            IntPtr start;
            nuint size;
            int result = _memGetAddressRange(&start, &size, memory);
            if (result != 0)
                throw new CudaIpcException($"cuMemGetAddressRange failed with CUDA driver error {result} for a receive buffer on cuda:{device} (memory from libtorch's " +
                    $"allocator with expandable_segments cannot be shared through IPC: unset PYTORCH_CUDA_ALLOC_CONF's expandable_segments). Set {GpuTransportChoice.Variable}=host to stage through the host.", result);
            IpcHandle handle;
            Check(_ipcGetMemHandle(&handle, start), "cudaIpcGetMemHandle");
            return (Bytes(handle), (long)memory - (long)start);
        }

        public IntPtr OpenMemory(byte[] handle, int device)
        {
            On(device);
            IntPtr memory;
            Check(_ipcOpenMemHandle(&memory, Handle(handle), IpcLazyEnablePeerAccess), "cudaIpcOpenMemHandle");
            return memory;
        }

        public void CloseMemory(IntPtr opened, int device)
        {
            On(device);
            Check(_ipcCloseMemHandle(opened), "cudaIpcCloseMemHandle");
        }

        public IntPtr CreateEvent(int device)
        {
            On(device);
            IntPtr created;
            Check(_eventCreateWithFlags(&created, EventInterprocess | EventDisableTiming), "cudaEventCreateWithFlags");
            return created;
        }

        public byte[] ExportEvent(IntPtr cudaEvent, int device)
        {
            On(device);
            IpcHandle handle;
            Check(_ipcGetEventHandle(&handle, cudaEvent), "cudaIpcGetEventHandle");
            return Bytes(handle);
        }

        public IntPtr OpenEvent(byte[] handle, int device)
        {
            On(device);
            IntPtr opened;
            Check(_ipcOpenEventHandle(&opened, Handle(handle)), "cudaIpcOpenEventHandle");
            return opened;
        }

        public void DestroyEvent(IntPtr cudaEvent, int device)
        {
            On(device);
            Check(_eventDestroy(cudaEvent), "cudaEventDestroy");
        }

        public IntPtr CreateStream(int device)
        {
            On(device);
            IntPtr stream;
            Check(_streamCreateWithFlags(&stream, StreamNonBlocking), "cudaStreamCreateWithFlags");
            return stream;
        }

        public void DestroyStream(IntPtr stream, int device)
        {
            On(device);
            Check(_streamDestroy(stream), "cudaStreamDestroy");
        }

        public void Record(IntPtr cudaEvent, IntPtr stream, int device)
        {
            On(device);
            Check(_eventRecord(cudaEvent, stream), "cudaEventRecord");
        }

        public void Wait(IntPtr stream, IntPtr cudaEvent, int device)
        {
            On(device);
            Check(_streamWaitEvent(stream, cudaEvent, 0), "cudaStreamWaitEvent");
        }

        public void Synchronize(IntPtr cudaEvent, int device)
        {
            On(device);
            Check(_eventSynchronize(cudaEvent), "cudaEventSynchronize");
        }

        public void Copy(IntPtr destination, IntPtr source, long bytes, IntPtr stream, int device)
        {
            On(device);
            Check(_memcpyAsync(destination, source, (nuint)bytes, MemcpyDeviceToDevice, stream), "cudaMemcpyAsync");
        }

        /// <summary>The runtime's current device is per thread, and libtorch's device guards move it: set it for every call.</summary>
        private void On(int device) => Check(_setDevice(device), "cudaSetDevice", $"(cuda:{device})");

        private void Check(int code, string call, string? what = null)
        {
            if (code == 0) return;
            string error = Marshal.PtrToStringAnsi(_getErrorString(code)) ?? "unknown error";
            throw new CudaIpcException(CudaIpcMessages.CallFailed(call, code, error, what), code);
        }

        private static byte[] Bytes(IpcHandle handle) => new ReadOnlySpan<byte>(handle.Bytes, HandleBytes).ToArray();

        private static IpcHandle Handle(byte[] bytes)
        {
            if (bytes.Length != HandleBytes) throw new ArgumentException($"A CUDA IPC handle has {HandleBytes} bytes, not {bytes.Length}.", nameof(bytes));
            IpcHandle handle;
            bytes.CopyTo(new Span<byte>(handle.Bytes, HandleBytes));
            return handle;
        }
    }
}
