using System;
using System.Runtime.InteropServices;
using Pippy.Runtime.Native;
using MpiU = MPI.Unsafe;

namespace Pippy.Runtime.Transport
{
    /// <summary>
    /// The pipeline's collectives (loss broadcast, gradient-norm and data-parallel allreduces) with the same watchdog
    /// as its messages: started non-blocking (MPI_Ibcast, MPI_Iallreduce; MPI.NET predates them, so they are taken
    /// from MPICH directly) and polled until done or until the timeout, which ends the job with a message naming the
    /// collective, instead of every other rank waiting forever for one that never comes.
    /// </summary>
    internal static unsafe class Collectives
    {
        private static readonly delegate* unmanaged<IntPtr, IntPtr, int, int, int, int, int*, int> Iallreduce =
            (delegate* unmanaged<IntPtr, IntPtr, int, int, int, int, int*, int>)Export("MPI_Iallreduce");
        private static readonly delegate* unmanaged<IntPtr, int, int, int, int, int*, int> Ibcast =
            (delegate* unmanaged<IntPtr, int, int, int, int, int*, int>)Export("MPI_Ibcast");

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
