using System;
using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace Pippy.Runtime.Native
{
    /// <summary>Tensor memory for MPI, and a clear error when TorchSharp's native library cannot load.</summary>
    internal static unsafe class TorchNative
    {
        [DllImport("LibTorchSharp")]
        private static extern IntPtr THSTensor_data(IntPtr handle);

        [DllImport("LibTorchSharp")]
        private static extern IntPtr THSTensor_new(IntPtr data, IntPtr deleter, long* sizes, int dimensions, sbyte type, sbyte dtype, int deviceType, int deviceIndex,
            [MarshalAs(UnmanagedType.U1)] bool requiresGrad);

        [UnmanagedCallersOnly]
        private static void KeepMemory(IntPtr data) { }

        /// <summary>
        /// A CPU tensor over memory this process manages itself (a shared segment): no copy is made, and torch never
        /// frees the memory; the caller keeps it mapped for as long as the tensor or any view of it is used.
        /// </summary>
        public static Tensor Wrap(IntPtr data, ScalarType dtype, long[] shape)
        {
            IntPtr handle;
            fixed (long* sizes = shape)
                handle = THSTensor_new(data, (IntPtr)(delegate* unmanaged<IntPtr, void>)&KeepMemory, sizes, shape.Length, (sbyte)dtype, (sbyte)dtype, (int)TorchSharp.DeviceType.CPU, 0, false);
            if (handle == IntPtr.Zero) throw new InvalidOperationException($"TorchSharp could not make a {dtype} [{string.Join(", ", shape)}] tensor over shared memory.");
            return Tensor.UnsafeCreateTensor(handle);
        }

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
