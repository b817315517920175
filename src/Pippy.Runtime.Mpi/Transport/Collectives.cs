using System;
using System.Runtime.InteropServices;
using Pippy.Runtime.Native;
using MpiU = MPI.Unsafe;

namespace Pippy.Runtime.Transport
{
    /// <summary>
    /// The pipeline's collectives (loss broadcast, gradient-norm and data-parallel allreduces, the model check, the
    /// measured block times of StageBalance.ByTime, the gather of WriteTrace) with the same watchdog as its messages:
    /// started non-blocking (MPI_Ibcast, MPI_Iallreduce, MPI_Igather, MPI_Igatherv; MPI.NET predates them, so they are
    /// taken from MPICH directly) and polled until done or until the timeout, which ends the job with a message naming
    /// the collective, instead of every other rank waiting forever for one that never comes.
    /// </summary>
    internal static unsafe class Collectives
    {
        private static readonly delegate* unmanaged<IntPtr, IntPtr, int, int, int, int, int*, int> Iallreduce =
            (delegate* unmanaged<IntPtr, IntPtr, int, int, int, int, int*, int>)Export("MPI_Iallreduce");
        private static readonly delegate* unmanaged<IntPtr, int, int, int, int, int*, int> Ibcast =
            (delegate* unmanaged<IntPtr, int, int, int, int, int*, int>)Export("MPI_Ibcast");

        private static readonly delegate* unmanaged<IntPtr, int, int, IntPtr, int, int, int, int, int*, int> Igather =
            (delegate* unmanaged<IntPtr, int, int, IntPtr, int, int, int, int, int*, int>)Export("MPI_Igather");
        private static readonly delegate* unmanaged<IntPtr, int, int, IntPtr, int*, int*, int, int, int, int*, int> Igatherv =
            (delegate* unmanaged<IntPtr, int, int, IntPtr, int*, int*, int, int, int, int*, int>)Export("MPI_Igatherv");

        public static void Allreduce(IntPtr send, IntPtr receive, int count, int datatype, int operation, int communicator, TimeSpan timeout, string what)
        {
            int request;
            Check(Iallreduce(send, receive, count, datatype, operation, communicator, &request), "MPI_Iallreduce", what);
            Wait(ref request, timeout, what);
        }

        public static void Broadcast(IntPtr buffer, int count, int datatype, int root, int communicator, TimeSpan timeout, string what)
        {
            int request;
            Check(Ibcast(buffer, count, datatype, root, communicator, &request), "MPI_Ibcast", what);
            Wait(ref request, timeout, what);
        }

        /// <summary><paramref name="count"/> values of each rank into <paramref name="receive"/> on <paramref name="root"/>, in rank order.</summary>
        public static void Gather(IntPtr send, int count, int datatype, IntPtr receive, int root, int communicator, TimeSpan timeout, string what)
        {
            int request;
            Check(Igather(send, count, datatype, receive, count, datatype, root, communicator, &request), "MPI_Igather", what);
            Wait(ref request, timeout, what);
        }

        /// <summary>
        /// <paramref name="count"/> values of each rank into <paramref name="receive"/> on <paramref name="root"/>, rank r's
        /// <paramref name="counts"/>[r] values at <paramref name="offsets"/>[r] (both read on the root only).
        /// </summary>
        public static void Gatherv(IntPtr send, int count, int datatype, IntPtr receive, int[] counts, int[] offsets, int root, int communicator, TimeSpan timeout, string what)
        {
            int request;
            fixed (int* countsOf = counts, offsetsOf = offsets)
                Check(Igatherv(send, count, datatype, receive, countsOf, offsetsOf, datatype, root, communicator, &request), "MPI_Igatherv", what);
            Wait(ref request, timeout, what);
        }

        private static void Wait(ref int request, TimeSpan timeout, string what)
        {
            fixed (int* requests = &request)
                RequestWatchdog.WaitAll(requests, 1, timeout, _ => $"the other ranks in {what}", "one of them is stuck, has failed, or does not call it.");
        }

        private static IntPtr Export(string name) =>
            MpiLibrary.Handle != IntPtr.Zero && NativeLibrary.TryGetExport(MpiLibrary.Handle, name, out var export)
                ? export
                : throw new MpiUnavailableException($"{name} is missing from the MPI library: Pippy needs an MPI-3 library (MPICH 3 or later).");

        private static void Check(int code, string call, string what)
        {
            if (code != 0) throw new InvalidOperationException($"{call} ({what}) failed with MPI error {code}.");
        }
    }
}
