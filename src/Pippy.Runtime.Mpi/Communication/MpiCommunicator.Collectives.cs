using System;
using System.Runtime.InteropServices;
using Pippy.Runtime.Native;
using static TorchSharp.torch;
using MpiU = MPI.Unsafe;

namespace Pippy.Runtime.Communication
{
    /// <summary>How an allreduce combines the ranks' values.</summary>
    internal enum ReduceOperation
    {
        Sum,
        BitwiseOr,
        LogicalAnd,
    }

    /// <summary>
    /// The collectives the runtime uses (the loss, gradient-norm and data-parallel allreduces, the model and
    /// checkpoint checks, the measured block times of StageBalance.ByTime, the gathers of WriteTrace), each started
    /// non-blocking (MPI_Ibcast, MPI_Iallreduce, MPI_Igather, MPI_Igatherv, MPI_Ibarrier; MPI.NET predates them, so they
    /// are taken from MPICH directly) and waited for under the watchdog, which ends the job with a message naming the
    /// collective instead of every other rank waiting forever for one that never comes.
    /// </summary>
    internal sealed unsafe partial class MpiCommunicator
    {
        /// <summary><paramref name="values"/> of rank <paramref name="root"/> into every rank's <paramref name="values"/>.</summary>
        public void Broadcast<T>(Span<T> values, int root, string what) where T : unmanaged
        {
            fixed (T* buffer = values)
                Broadcast((IntPtr)buffer, values.Length, Datatype<T>(), root, what);
        }

        /// <summary>A contiguous tensor of rank <paramref name="root"/> into every rank's tensor of the same shape (any dtype: its bytes).</summary>
        public void Broadcast(Tensor tensor, int root, string what) =>
            Broadcast(TorchNative.DataPointer(tensor), checked((int)(tensor.NumberOfElements * tensor.ElementSize)), MpiU.MPI_BYTE, root, what);

        /// <summary>Combines every rank's <paramref name="send"/> into every rank's <paramref name="receive"/> (same length).</summary>
        public void Allreduce<T>(ReadOnlySpan<T> send, Span<T> receive, ReduceOperation operation, string what) where T : unmanaged
        {
            if (receive.Length != send.Length) throw new ArgumentException("An allreduce receives as many values as it sends.", nameof(receive));
            fixed (T* input = send, output = receive)
                Allreduce((IntPtr)input, (IntPtr)output, send.Length, Datatype<T>(), operation, what);
        }

        /// <summary>One value combined over every rank.</summary>
        public T Allreduce<T>(T value, ReduceOperation operation, string what) where T : unmanaged
        {
            T result = default;
            Allreduce((IntPtr)(&value), (IntPtr)(&result), 1, Datatype<T>(), operation, what);
            return result;
        }

        /// <summary>Every rank's contiguous tensor summed into <paramref name="sum"/> (same shape and dtype).</summary>
        public void Allreduce(Tensor tensor, Tensor sum, ReduceOperation operation, string what) =>
            Allreduce(TorchNative.DataPointer(tensor), TorchNative.DataPointer(sum), checked((int)tensor.NumberOfElements), Datatype(tensor.dtype), operation, what);

        /// <summary>Every rank's <paramref name="send"/> into <paramref name="receive"/> on <paramref name="root"/>, in rank order (the same count from each).</summary>
        public void Gather<T>(ReadOnlySpan<T> send, Span<T> receive, int root, string what) where T : unmanaged
        {
            int request;
            fixed (T* input = send, output = receive)
            {
                Check(Exports.Igather((IntPtr)input, send.Length, Datatype<T>(), (IntPtr)output, send.Length, Datatype<T>(), root, _handle, &request), "MPI_Igather", what);
                Wait(&request, what);
            }
        }

        /// <summary>
        /// Every rank's <paramref name="send"/> into <paramref name="receive"/> on <paramref name="root"/>: rank r's
        /// <paramref name="counts"/>[r] values at <paramref name="offsets"/>[r] (both read on the root only).
        /// </summary>
        public void Gatherv<T>(ReadOnlySpan<T> send, Span<T> receive, int[] counts, int[] offsets, int root, string what) where T : unmanaged
        {
            int request;
            // An empty span has no address; MPI still wants one.
            T placeholder = default;
            fixed (T* input = send, output = receive)
            fixed (int* countsOf = counts, offsetsOf = offsets)
            {
                Check(Exports.Igatherv(input == null ? (IntPtr)(&placeholder) : (IntPtr)input, send.Length, Datatype<T>(), (IntPtr)output, countsOf, offsetsOf, Datatype<T>(), root, _handle, &request),
                    "MPI_Igatherv", what);
                Wait(&request, what);
            }
        }

        /// <summary>Returns when every rank has called it (MPI_Ibarrier, under the watchdog).</summary>
        public void Barrier(string what)
        {
            int request;
            Check(Exports.Ibarrier(_handle, &request), "MPI_Ibarrier", what);
            Wait(&request, what);
        }

        private void Broadcast(IntPtr buffer, int count, int datatype, int root, string what)
        {
            int request;
            Check(Exports.Ibcast(buffer, count, datatype, root, _handle, &request), "MPI_Ibcast", what);
            Wait(&request, what);
        }

        private void Allreduce(IntPtr send, IntPtr receive, int count, int datatype, ReduceOperation operation, string what)
        {
            int request;
            Check(Exports.Iallreduce(send, receive, count, datatype, Operation(operation), _handle, &request), "MPI_Iallreduce", what);
            Wait(&request, what);
        }

        private void Wait(int* request, string what) =>
            Waits.All(request, 1, Timeout, _ => $"the other ranks in {what}", "one of them is stuck, has failed, or does not call it.");

        private static int Operation(ReduceOperation operation) => operation switch
        {
            ReduceOperation.Sum => MpiU.MPI_SUM,
            ReduceOperation.BitwiseOr => MpiU.MPI_BOR,
            ReduceOperation.LogicalAnd => MpiU.MPI_LAND,
            _ => throw new ArgumentOutOfRangeException(nameof(operation), operation, null),
        };

        private static int Datatype<T>() where T : unmanaged =>
            typeof(T) == typeof(byte) ? MpiU.MPI_BYTE
            : typeof(T) == typeof(int) ? MpiU.MPI_INT
            : typeof(T) == typeof(double) ? MpiU.MPI_DOUBLE
            : typeof(T) == typeof(float) ? MpiU.MPI_FLOAT
            : typeof(T) == typeof(ulong) ? MpiU.MPI_UNSIGNED_LONG_LONG
            : throw new NotSupportedException($"No MPI datatype for {typeof(T)}.");

        /// <summary>The tensor dtypes sums are formed in: float32 and float64 (bf16 and fp16 gradients are summed in float32, DataParallelSync).</summary>
        private static int Datatype(ScalarType dtype) => dtype switch
        {
            ScalarType.Float32 => MpiU.MPI_FLOAT,
            ScalarType.Float64 => MpiU.MPI_DOUBLE,
            _ => throw new NotSupportedException($"Tensor sums over MPI are formed in float32 or float64, not {dtype}: convert to float32 first."),
        };

        /// <summary>The non-blocking collectives, looked up in MPICH when the first collective runs (not when a tag is computed).</summary>
        private static class Exports
        {
            public static readonly delegate* unmanaged<IntPtr, IntPtr, int, int, int, int, int*, int> Iallreduce =
                (delegate* unmanaged<IntPtr, IntPtr, int, int, int, int, int*, int>)Export("MPI_Iallreduce");
            public static readonly delegate* unmanaged<IntPtr, int, int, int, int, int*, int> Ibcast =
                (delegate* unmanaged<IntPtr, int, int, int, int, int*, int>)Export("MPI_Ibcast");
            public static readonly delegate* unmanaged<IntPtr, int, int, IntPtr, int, int, int, int, int*, int> Igather =
                (delegate* unmanaged<IntPtr, int, int, IntPtr, int, int, int, int, int*, int>)Export("MPI_Igather");
            public static readonly delegate* unmanaged<IntPtr, int, int, IntPtr, int*, int*, int, int, int, int*, int> Igatherv =
                (delegate* unmanaged<IntPtr, int, int, IntPtr, int*, int*, int, int, int, int*, int>)Export("MPI_Igatherv");
            public static readonly delegate* unmanaged<int, int*, int> Ibarrier =
                (delegate* unmanaged<int, int*, int>)Export("MPI_Ibarrier");
        }

        private static IntPtr Export(string name) =>
            MpiLibrary.Handle != IntPtr.Zero && NativeLibrary.TryGetExport(MpiLibrary.Handle, name, out var export)
                ? export
                : throw new MpiUnavailableException($"{name} is missing from the MPI library: Pippy needs an MPI-3 library (MPICH 3 or later).");
    }
}
