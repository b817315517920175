using System;
using System.IO;
using System.Runtime.ExceptionServices;
using System.Text;

namespace Pippy.Runtime.Communication
{
    /// <summary>
    /// Makes every rank reach the same verdict on a step that all of them take (checking the configuration at Build,
    /// saving or loading a checkpoint): each rank says whether it failed, and when any did, every rank throws the
    /// failure of the lowest such rank (its message and kind of exception), so that no rank goes on to change its
    /// state, or waits in a later collective, while another has stopped. The exception is marked with that rank
    /// (<see cref="ReportedBy"/>): left unhandled, it is printed once, by that rank, as its message alone, and every
    /// rank exits non-zero (PipelineEnvironment). Non-blocking collectives with the watchdog: a rank that never comes
    /// ends the job instead of hanging it.
    /// </summary>
    internal static class FailureAgreement
    {
        private const int None = 0, InvalidData = 1, InvalidOperation = 2, FileNotFound = 3, Io = 4, Argument = 5, Other = 6;
        private const string ReportedByKey = "Pippy.ReportedByRank";

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
            if (rank == first) ExceptionDispatchInfo.Capture(Mark(failure!, first)).Throw();
            string message = Encoding.UTF8.GetString(text);
            throw Mark(all[first] switch
            {
                InvalidData => new InvalidDataException(message),
                FileNotFound => new FileNotFoundException(message),
                Io => new IOException(message),
                Argument => new ArgumentException(message),
                _ => (Exception)new InvalidOperationException(message),
            }, first);
        }

        /// <summary>Marks <paramref name="failure"/> as every rank's, to be reported by <paramref name="rank"/> alone.</summary>
        public static Exception Mark(Exception failure, int rank)
        {
            failure.Data[ReportedByKey] = rank;
            return failure;
        }

        /// <summary>The rank that reports a failure every rank agreed on (null for any other exception).</summary>
        public static int? ReportedBy(Exception failure)
        {
            for (Exception? e = failure; e is not null; e = e.InnerException)
                if (e.Data[ReportedByKey] is int rank) return rank;
            return null;
        }

        private static int Kind(Exception? failure) => failure switch
        {
            null => None,
            InvalidDataException => InvalidData,
            FileNotFoundException => FileNotFound,
            IOException => Io,
            ArgumentException => Argument,
            InvalidOperationException => InvalidOperation,
            _ => Other,
        };
    }
}
