using System.Threading;
using Pippy.Runtime.Communication;
using Pippy.Runtime.Native;

namespace Pippy.Runtime.Transport
{
    /// <summary>
    /// A rank's doorbell, in shared memory its peers on the machine map: a sender rings it after posting a message to
    /// this rank, and this rank, waiting for a message with nothing else to do, sleeps on it (a futex) instead of
    /// waking on a timer to poll MPI. Where ranks outnumber cores a polling sleeper costs the busy ranks a context
    /// switch per poll (thousands a second), and waking on the ring costs one per message.
    /// <para>
    /// Two words: the ring count, which senders increment and sleepers wait to change, and how many threads sleep, so
    /// that a sender makes the wake-up system call only when someone sleeps. A sleeper reads the count before it tests
    /// its requests, so a ring between that test and the sleep makes the sleep return at once (no lost wake-up).
    /// </para>
    /// </summary>
    internal sealed unsafe class Doorbell(nint address) : IWakeSignal
    {
        /// <summary>The doorbell's two words sit past the segment's first 64 bytes (where the probe's token is).</summary>
        public const int Offset = 64;

        private int* Rings => (int*)(address + Offset);
        private int* Sleepers => (int*)(address + Offset + sizeof(int));

        /// <inheritdoc/>
        public int Seen => Volatile.Read(ref *Rings);

        /// <inheritdoc/>
        public void SleepUnlessRung(int seen, long microseconds)
        {
            Interlocked.Increment(ref *Sleepers);
            Futex.WaitWhile(Rings, seen, microseconds);
            Interlocked.Decrement(ref *Sleepers);
        }

        /// <summary>Rings: wakes the rank if it sleeps on its doorbell (called by its peers, after posting a message to it).</summary>
        public void Ring()
        {
            Interlocked.Increment(ref *Rings);
            if (Volatile.Read(ref *Sleepers) > 0) Futex.WakeAll(Rings);
        }
    }
}
