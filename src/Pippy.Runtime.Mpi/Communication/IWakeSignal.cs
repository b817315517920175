namespace Pippy.Runtime.Communication
{
    /// <summary>
    /// Something that tells a waiting rank that a message may have arrived, so that it can sleep until then instead
    /// of polling MPI on a timer (<see cref="Transport.Doorbell"/>, rung by the ranks of its machine).
    /// </summary>
    internal interface IWakeSignal
    {
        /// <summary>The signal's count now: read before testing the requests, and given to <see cref="SleepUnlessRung"/>.</summary>
        int Seen { get; }

        /// <summary>Sleeps until the count differs from <paramref name="seen"/>, at most <paramref name="microseconds"/>.</summary>
        void SleepUnlessRung(int seen, long microseconds);
    }
}
