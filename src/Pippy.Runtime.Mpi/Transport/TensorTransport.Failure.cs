using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Runtime.Communication;
using static TorchSharp.torch;

namespace Pippy.Runtime.Transport
{
    internal sealed partial class TensorTransport
    {
        /// <summary>
        /// Closes the transport after a failed step without waiting for anything a failed step will never see done:
        /// every posted receive is cancelled (MPI_Cancel, then polled for up to <paramref name="grace"/>; one whose
        /// cancellation does not complete keeps its memory alive until the process exits), every send not completed by
        /// then is left to MPI with its memory kept alive (MPICH cannot always cancel a send, and a send's memory must
        /// not be freed under it), and shared-memory slots a receiver has not freed stay mapped until the process
        /// exits (a receiver may still open one). Returns at once when nothing is pending, within
        /// <paramref name="grace"/> otherwise. The job still has to end: the failed rank exits or aborts, and the other
        /// ranks, which wait for its messages, are ended by the abort or by their watchdog.
        /// </summary>
        public (int CancelledReceives, int AbandonedReceives, int AbandonedSends) DisposeAfterFailure(TimeSpan grace)
        {
            long deadline = System.Diagnostics.Stopwatch.GetTimestamp() + (long)(grace.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
            var receives = _receiving.ToList();
            _receiving.Clear();
            var open = new List<(int Request, Tensor Memory)>();
            foreach (var (request, memory) in receives)
            {
                int r = request;
                MpiCommunicator.Cancel(ref r);
                open.Add((r, memory));
            }
            var sends = _pending.Select(p => (p.Request, p.Sent, p.Original)).ToList();
            _pending.Clear();
            // Both kinds complete only while MPI is polled: test until all are done or the grace period is over.
            bool[] receiveDone = new bool[open.Count], sendDone = new bool[sends.Count];
            int cancelled = 0;
            while (true)
            {
                bool all = true;
                for (int k = 0; k < open.Count; k++)
                {
                    if (receiveDone[k]) continue;
                    int r = open[k].Request;
                    if (MpiCommunicator.TryComplete(ref r)) { receiveDone[k] = true; cancelled++; }
                    else all = false;
                }
                for (int k = 0; k < sends.Count; k++)
                {
                    if (sendDone[k]) continue;
                    int r = sends[k].Request;
                    if (MpiCommunicator.TryComplete(ref r)) sendDone[k] = true;
                    else all = false;
                }
                if (all || System.Diagnostics.Stopwatch.GetTimestamp() > deadline) break;
                System.Threading.Thread.Yield();
            }
            int abandonedSends = 0;
            lock (s_abandoned)
            {
                for (int k = 0; k < open.Count; k++)
                    if (!receiveDone[k]) s_abandoned.Add(open[k].Memory);
                for (int k = 0; k < sends.Count; k++)
                {
                    if (sendDone[k])
                    {
                        Staging.Release(sends[k].Sent, sends[k].Original);
                        if (!ReferenceEquals(sends[k].Sent, sends[k].Original)) sends[k].Original.Dispose();
                        else sends[k].Sent.Dispose();
                        continue;
                    }
                    abandonedSends++;
                    s_abandoned.Add(sends[k].Sent);
                    s_abandoned.Add(sends[k].Original);
                }
            }
            _buffers.Clear();
            _slots?.DisposeKeepingUnfreed();
            _ipc?.DisposeAfterFailure(grace);
            Staging.Clear();
            return (cancelled, open.Count - cancelled, abandonedSends);
        }
    }
}
