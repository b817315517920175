using System;
using System.IO;
using System.Runtime.ExceptionServices;
using System.Text;
using Pippy.Runtime.Communication;

namespace Pippy.Runtime.Checkpoints
{
    /// <summary>
    /// Makes every rank reach the same verdict on a step of saving or loading a checkpoint: each rank says whether it
    /// failed, and when any did, every rank throws the failure of the lowest such rank (its message and kind of
    /// exception), so that no rank goes on to change its state, or waits in a later collective, while another has
    /// stopped. Non-blocking collectives with the pipeline's watchdog: a rank that never comes ends the job instead of
    /// hanging it.
    /// </summary>
    internal static class CheckpointAgreement
    {
        private const int None = 0, InvalidData = 1, InvalidOperation = 2, FileNotFound = 3, Io = 4, Other = 5;

        public static void Agree(Exception? failure, MpiCommunicator world, string what)
        {
            int rank = world.Rank;
            var mine = new int[world.Size];
            var all = new int[world.Size];
            mine[rank] = Kind(failure);
            world.Allreduce<int>(mine, all, ReduceOperation.Sum, what);
            int first = Array.FindIndex(all, k => k != None);
            if (first < 0) return;

            // The first failing rank's message to every rank.
            var text = rank == first ? Encoding.UTF8.GetBytes(failure!.Message) : Array.Empty<byte>();
            var length = new[] { text.Length };
            world.Broadcast<int>(length, first, what);
            if (rank != first) text = new byte[length[0]];
            world.Broadcast<byte>(text, first, what);
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
