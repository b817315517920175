using System;

namespace Pippy.Runtime.Transport
{
    /// <summary>A CUDA runtime call of the IPC path failed; the message names the call, the error and the fix.</summary>
    internal sealed class CudaIpcException : InvalidOperationException
    {
        public CudaIpcException(string message, int code = 0) : base(message) => Code = code;

        /// <summary>The cudaError_t value (0 when the failure is not a CUDA call's).</summary>
        public int Code { get; }
    }

    /// <summary>
    /// The words of the IPC path's failures, in one place so that tests read them without a GPU: each says what is
    /// missing or failed and how to run anyway (host staging).
    /// </summary>
    internal static class CudaIpcMessages
    {
        private static string Fix => $"Set {GpuTransportChoice.Variable}=host to send CUDA tensors through pinned host buffers instead.";

        public static string GpuMissing() =>
            "CUDA IPC needs a CUDA device, and torch.cuda.is_available() is false here (no NVIDIA GPU or driver, or a CPU build of libtorch: " +
            $"build with -p:TorchBackend=cuda). {Fix}";

        public static string RuntimeMissing(string variable) =>
            $"{variable}=ipc, but no CUDA runtime library (libcudart.so.13, .so.12, .so.11.0) is loaded or loadable: CUDA IPC goes through the runtime " +
            "that libtorch ships. Put its directory on LD_LIBRARY_PATH (with PyTorch: site-packages/nvidia/cuda_runtime/lib, or nvidia/cu13/lib), " +
            $"or set {CudaIpcRuntimeVariable} to the library's path. {Fix}";

        /// <summary>Set to the CUDA runtime library's file name or path when it is not found by itself.</summary>
        public const string CudaIpcRuntimeVariable = "PIPPY_CUDART";

        /// <summary>A CUDA call failed: <paramref name="call"/> returned <paramref name="code"/> (<paramref name="error"/> from cudaGetErrorString).</summary>
        public static string CallFailed(string call, int code, string error, string? what = null) =>
            $"{call} failed with CUDA error {code} ({error}){(what is null ? "" : " " + what)}. {Hint(call)}{Fix}";

        private static string Hint(string call) => call switch
        {
            "cudaIpcOpenMemHandle" or "cudaIpcOpenEventHandle" =>
                "The peer's handle could not be opened here: both ranks must run on this machine and see the same GPUs (no CUDA_VISIBLE_DEVICES " +
                "that hides the peer's device, containers sharing the IPC namespace), and the device must support IPC (not MIG, not WSL). ",
            "cudaIpcGetMemHandle" or "cudaIpcGetEventHandle" =>
                "The memory or event cannot be shared with other processes (memory of libtorch's allocator with expandable_segments, or a device without IPC). ",
            _ => "",
        };

        public static string OpenFailed(int peer, string key, Exception inner) =>
            $"Rank {peer}'s receive buffer for {key} could not be mapped here: {inner.Message}";
    }
}
