using System;
using TorchSharp;
using static TorchSharp.torch;

namespace Pippy.Runtime.Transport
{
    /// <summary>
    /// The CUDA runtime calls of the IPC path, behind an interface so that the handle caches and the protocol run in
    /// tests without a GPU: <see cref="Native.CudaRuntime"/> is the real one (libcudart, loaded at run time); the tests'
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

        /// <summary>cudaMalloc: memory of its own, so that its IPC handle covers exactly this buffer (libtorch's caching allocator hands out parts of larger blocks).</summary>
        IntPtr Allocate(long bytes, int device);
        void Free(IntPtr memory, int device);
        byte[] ExportMemory(IntPtr memory, int device);
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

        /// <summary>A tensor over memory from <see cref="Allocate"/>, which stays this object's to free.</summary>
        Tensor Wrap(IntPtr memory, ScalarType dtype, long[] shape, int device);
    }
}
