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
            /// <summary>The longest sleep between two polls of a long wait without a doorbell.</summary>
            private const long LongWaitSleepMicroseconds = 1000;

            /// <summary>
            /// After <paramref name="idle"/> polls in a row that found nothing new: keep spinning, yield, or sleep: on the
            /// doorbell where the senders ring one (<paramref name="bell"/>, whose count was <paramref name="seen"/> before
            /// the poll), else a growing while.
            /// </summary>
            private static void Pause(WaitPolicy policy, int idle, IWakeSignal? bell, int seen, long started)
            {
                if (policy.Mode == WaitMode.Spin || idle < policy.SpinRounds) return;
                if (policy.Mode == WaitMode.Sleep && bell is not null && policy.BellMicroseconds > 0)
                {
                    bell.SleepUnlessRung(seen, policy.BellMicroseconds);
                    return;
                }
                if (policy.Mode == WaitMode.Yield)
                {
                    System.Threading.Thread.Yield();
                    return;
                }
                int doublings = Math.Min(16, idle - policy.SpinRounds);
                long micros = Math.Min((long)policy.FirstSleepMicroseconds << doublings, policy.MaxSleepMicroseconds);
                // A long wait (a rank idle at a barrier while others work) sleeps longer, up to an eighth of the time
                // waited so far (at most LongWaitSleepMicroseconds): each poll wakes a core that others need, and
                // arriving that much later costs little against the wait itself.
                long waited = (Stopwatch.GetTimestamp() - started) * 1_000_000 / Stopwatch.Frequency;
                micros = Math.Max(micros, Math.Min(waited / 8, LongWaitSleepMicroseconds));
                Native.Libc.SleepMicroseconds((uint)micros);
            }

            /// <param name="bell">Rung by every sender of the awaited messages (null: none is, or not all are).</param>
            public static void All(int* requests, int count, TimeSpan timeout, Func<int, string> what, string why, IWakeSignal? bell = null)
            {
                if (count == 0) return;
                var policy = WaitPolicy.Current;
                var done = new bool[count];
                int remaining = count;
                long started = Stopwatch.GetTimestamp();
                long deadline = timeout == System.Threading.Timeout.InfiniteTimeSpan ? long.MaxValue
                    : Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
                for (int round = 0, idle = 0; ; round++)
                {
                    bool progressed = false;
                    int seen = bell?.Seen ?? 0;
                    for (int k = 0; k < count; k++)
                    {
                        if (done[k]) continue;
                        int code = MPI.Unsafe.MPI_Test(ref requests[k], out int flag, out _);
                        if (code != 0) throw new InvalidOperationException($"MPI_Test ({what(k)}) failed with MPI error {code}.");
                        if (flag != 0) { done[k] = true; remaining--; progressed = true; }
                    }
                    if (remaining == 0) return;
                    // Where ranks outnumber cores, the rank this one waits for may need this core: after a short spin,
                    // give it up between polls (WaitPolicy), the pause growing while nothing arrives.
                    if (progressed) idle = 0;
                    else Pause(policy, idle = Math.Min(idle + 1, 1 << 20), bell, seen, started);
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
