using System;
using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace Pippy.Runtime.Native
{
    /// <summary>Tensor memory for MPI, and a clear error when TorchSharp's native library cannot load.</summary>
    internal static class TorchNative
    {
        [DllImport("LibTorchSharp")]
        private static extern IntPtr THSTensor_data(IntPtr handle);

        /// <summary>The address of a contiguous tensor's first element (storage offset included). No copy is made.</summary>
        public static IntPtr DataPointer(Tensor tensor)
        {
            if (!tensor.is_contiguous()) throw new ArgumentException("Only contiguous tensors can be sent; call contiguous() first.", nameof(tensor));
            return THSTensor_data(tensor.Handle);
        }

        /// <summary>
        /// The native tensor (TensorImpl) a wrapper stands for: TorchSharp's handle points at an at::Tensor, whose only
        /// field is the TensorImpl pointer. Two wrappers of one tensor (a tied weight read through two modules) give
        /// the same value even on the meta device, where every data pointer is null.
        /// </summary>
        public static IntPtr Identity(Tensor tensor)
        {
            if (tensor.IsInvalid) throw new ObjectDisposedException(nameof(tensor), "The tensor has been disposed.");
            return Marshal.ReadIntPtr(tensor.Handle);
        }

        /// <summary>Loads libtorch now, so that a broken install fails at start with the fix, not at the first layer.</summary>
        public static void EnsureLoaded()
        {
            try
            {
                using var probe = zeros(1);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                throw new InvalidOperationException(
                    "TorchSharp's native library (libLibTorchSharp.so) could not be loaded. On Debian 12 it needs the build step that " +
                    "marks its GLIBCXX_3.4.32 requirement weak (build/TorchSharp.Debian.targets, run after every build): rebuild the project " +
                    "with 'dotnet build' and run the built program. Other causes: no libtorch backend package (TorchBackend=cpu or cuda). " +
                    $"Inner error: {e.Message}", e);
            }
        }
    }
}
