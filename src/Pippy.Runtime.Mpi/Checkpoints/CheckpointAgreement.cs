using System;
using System.IO;
using System.Runtime.ExceptionServices;
using System.Text;
using Pippy.Runtime.Transport;
using MpiU = MPI.Unsafe;

namespace Pippy.Runtime.Checkpoints
{
    /// <summary>
    /// Makes every rank reach the same verdict on a step of saving or loading a checkpoint: each rank says whether it
    /// failed, and when any did, every rank throws the failure of the lowest such rank (its message and kind of
    /// exception), so that no rank goes on to change its state, or waits in a later collective, while another has
    /// stopped. Non-blocking collectives with the pipeline's watchdog: a rank that never comes ends the job instead of
    /// hanging it.
    /// </summary>
    internal static unsafe class CheckpointAgreement
    {
        private const int None = 0, InvalidData = 1, InvalidOperation = 2, FileNotFound = 3, Io = 4, Other = 5;

        public static void Agree(Exception? failure, int communicator, int rank, int size, TimeSpan timeout, string what)
        {
            var mine = new int[size];
            var all = new int[size];
            mine[rank] = Kind(failure);
            fixed (int* send = mine)
            fixed (int* receive = all)
                Collectives.Allreduce((IntPtr)send, (IntPtr)receive, size, MpiU.MPI_INT, MpiU.MPI_SUM, communicator, timeout, what);
            int first = Array.FindIndex(all, k => k != None);
            if (first < 0) return;

            // The first failing rank's message to every rank.
            var text = rank == first ? Encoding.UTF8.GetBytes(failure!.Message) : Array.Empty<byte>();
            int length = text.Length;
            Collectives.Broadcast((IntPtr)(&length), 1, MpiU.MPI_INT, first, communicator, timeout, what);
            if (rank != first) text = new byte[length];
            fixed (byte* buffer = text)
                Collectives.Broadcast((IntPtr)buffer, length, MpiU.MPI_BYTE, first, communicator, timeout, what);
            if (rank == first) ExceptionDispatchInfo.Capture(failure!).Throw();
            string message = Encoding.UTF8.GetString(text);
            throw all[first] switch
            {
                InvalidData => new InvalidDataException(message),
                FileNotFound => new FileNotFoundException(message),
                Io => new IOException(message),
                _ => (Exception)new InvalidOperationException(message),
            };
        }

        private static int Kind(Exception? failure) => failure switch
        {
            null => None,
            InvalidDataException => InvalidData,
            FileNotFoundException => FileNotFound,
            IOException => Io,
            InvalidOperationException => InvalidOperation,
            _ => Other,
        };
    }
}
