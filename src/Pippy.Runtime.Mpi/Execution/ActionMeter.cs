using System.Diagnostics;

namespace Pippy.Runtime.Execution
{
    /// <summary>
    /// Where a rank's step time goes: inside torch (the stages' forward, the loss, autograd) and inside the transport
    /// (posting, sending, waiting); the rest is the runtime's own overhead (<see cref="StepStatistics"/>). An action
    /// takes <see cref="Now"/> before the part it measures and adds it after.
    /// </summary>
    internal sealed class ActionMeter
    {
        public long ComputeTicks { get; private set; }

        public long CommunicationTicks { get; private set; }

        /// <summary>The machine's monotonic clock (Stopwatch ticks).</summary>
        public static long Now => Stopwatch.GetTimestamp();

        public void AddCompute(long since) => ComputeTicks += Stopwatch.GetTimestamp() - since;

        public void AddCommunication(long since) => CommunicationTicks += Stopwatch.GetTimestamp() - since;

        public static double Milliseconds(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;
    }
}
