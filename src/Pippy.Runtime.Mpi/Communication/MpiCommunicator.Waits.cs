using System;
using System.Diagnostics;
using System.Linq;

namespace Pippy.Runtime.Communication
{
    internal sealed unsafe partial class MpiCommunicator
    {
        /// <summary>
        /// Waits for MPI requests like MPI_Waitall (polling MPI_Test, which drives MPI's progress as MPI_Wait does), but
        /// gives up after a timeout: the watchdog of messages and collectives alike. It then names what this rank waited
        /// for, so a stuck peer or a schedule bug ends the job with a message instead of a hang.
        /// </summary>
        private static class Waits
        {
            /// <summary>
            /// Polls without giving up the core before yielding it between polls, where this machine runs more ranks
            /// than it has cores (MPICH's launcher says how many in MPI_LOCALNRANKS); otherwise it never yields. Yielding lets the
            /// rank that is waited for run sooner where it shares the core (the 4-rank parity grid took 115 s spinning and
            /// 71 s yielding on 2 cores), but costs where the core is not shared by ranks: every yield may hand it to any
            /// other process, and a large collective, which moves only while it is polled, then took half as long again.
            /// </summary>
            private const int SpinRounds = 64;

            private static readonly bool Oversubscribed =
                int.TryParse(Environment.GetEnvironmentVariable("MPI_LOCALNRANKS"), out int local) && local > Environment.ProcessorCount;

            public static void All(int* requests, int count, TimeSpan timeout, Func<int, string> what, string why)
            {
                if (count == 0) return;
                var done = new bool[count];
                int remaining = count;
                long deadline = timeout == System.Threading.Timeout.InfiniteTimeSpan ? long.MaxValue
                    : Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
                for (int round = 0, idle = 0; ; round++)
                {
                    bool progressed = false;
                    for (int k = 0; k < count; k++)
                    {
                        if (done[k]) continue;
                        int code = MPI.Unsafe.MPI_Test(ref requests[k], out int flag, out _);
                        if (code != 0) throw new InvalidOperationException($"MPI_Test ({what(k)}) failed with MPI error {code}.");
                        if (flag != 0) { done[k] = true; remaining--; progressed = true; }
                    }
                    if (remaining == 0) return;
                    // Where ranks outnumber cores, the rank this one waits for may need this core: after a short spin,
                    // give it up between polls (sched_yield returns at once when nothing else wants the core).
                    if (progressed || !Oversubscribed) idle = 0;
                    else if (idle < SpinRounds) idle++;
                    else System.Threading.Thread.Yield();
                    if ((round & 1023) == 1023 && Stopwatch.GetTimestamp() > deadline)
                    {
                        var missing = Enumerable.Range(0, count).Where(k => !done[k]).Select(what);
                        throw new TimeoutException(
                            $"Rank {WorldRank} waited {timeout.TotalSeconds:0.#} s for {string.Join("; ", missing)}: {why} " +
                            "The watchdog ends the job (PipelineOptions.ReceiveTimeout).");
                    }
                }
            }
        }
    }
}
