using System;
using TorchSharp;
using static TorchSharp.torch;

namespace Pippy.Runtime.Transport
{
    /// <summary>
    /// The CUDA runtime calls of the IPC path, behind an interface so that the handle caches and the protocol run in
    /// tests without a GPU: <see cref="Native.CudaRuntime"/> is the real one (libcudart and libcuda, loaded at run time); the tests'
    /// mock keeps "device" memory in shared memory files on the CPU. Every call names the device it works on (the
    /// runtime's current device is per thread, and libtorch moves it). Handles are the runtime's 64-byte
    /// cudaIpcMemHandle_t and cudaIpcEventHandle_t, as byte arrays, since MPI carries them as bytes.
    /// </summary>
    internal interface ICudaIpc
    {
        /// <summary>What this is, for the start-up line (the library's file name).</summary>
        string Name { get; }

        /// <summary>Where its memory lives as tensors: CUDA (the mock: the CPU).</summary>
        DeviceType DeviceType { get; }

        /// <summary>The stream libtorch computes on (0: the legacy default stream, which TorchSharp uses).</summary>
        IntPtr ComputeStream { get; }

        /// <summary>
        /// A receive buffer the peer may map: a tensor from libtorch's own allocator (TorchSharp cannot wrap device
        /// memory it did not allocate), so its IPC handle covers the allocator's whole block: see <see cref="ExportMemory"/>.
        /// </summary>
        Tensor Allocate(ScalarType dtype, long[] shape, int device);

        /// <summary>Gives a buffer of <see cref="Allocate"/> back (to libtorch's allocator).</summary>
        void Free(Tensor buffer, int device);

        /// <summary>
        /// The IPC handle of the allocation that holds <paramref name="memory"/> (cudaIpcGetMemHandle of its base, from
        /// cuMemGetAddressRange) and where in it the memory starts: the peer maps the allocation and adds the offset.
        /// </summary>
        (byte[] Handle, long Offset) ExportMemory(IntPtr memory, int device);

        /// <summary>Maps a peer's allocation here (cudaIpcOpenMemHandle); returns its base.</summary>
        IntPtr OpenMemory(byte[] handle, int device);
        void CloseMemory(IntPtr opened, int device);

        /// <summary>An event other processes can open and wait on (cudaEventInterprocess | cudaEventDisableTiming).</summary>
        IntPtr CreateEvent(int device);
        byte[] ExportEvent(IntPtr cudaEvent, int device);
        IntPtr OpenEvent(byte[] handle, int device);
        void DestroyEvent(IntPtr cudaEvent, int device);

        /// <summary>A stream that does not wait for the legacy default stream (cudaStreamNonBlocking): copies overlap compute.</summary>
        IntPtr CreateStream(int device);
        void DestroyStream(IntPtr stream, int device);
        void Record(IntPtr cudaEvent, IntPtr stream, int device);

        /// <summary>Work queued on <paramref name="stream"/> from now on waits for the event's last record (cudaStreamWaitEvent); the host does not wait.</summary>
        void Wait(IntPtr stream, IntPtr cudaEvent, int device);

        /// <summary>The host waits for the event's last record (cudaEventSynchronize).</summary>
        void Synchronize(IntPtr cudaEvent, int device);

        /// <summary>cudaMemcpyAsync device to device on <paramref name="stream"/>.</summary>
        void Copy(IntPtr destination, IntPtr source, long bytes, IntPtr stream, int device);
    }
}
