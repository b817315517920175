using System.Collections.Generic;
using Pippy.Schedules;

namespace Pippy.Runtime
{
    /// <summary>What one rank did in one step: messages sent, and each action's measured start and end (milliseconds).</summary>
    public readonly record struct StepStatistics(int ActivationsSent, int GradientsSent, IReadOnlyList<TimedAction> Timeline)
    {
        /// <summary>Receive buffers this step had to create (none once the shapes are learned: buffers are reused).</summary>
        public int ReceiveBuffersAllocated { get; init; }

        /// <summary>Shared-memory slots this step had to create to send from (none once every message size has enough slots in flight).</summary>
        public int SharedSlotsCreated { get; init; }

        /// <summary>Messages sent with a shape header (the first step, or after the batch's shapes changed).</summary>
        public int MessagesWithHeader { get; init; }

        /// <summary>Messages sent as the tensor's memory alone, into a receive posted in advance.</summary>
        public int MessagesMemoryOnly { get; init; }

        /// <summary>
        /// Messages whose tensor memory went through shared memory (to and from ranks of this machine; the notice that
        /// names the slot still goes through MPI). Headers and notices are not counted.
        /// </summary>
        public int MessagesViaSharedMemory { get; init; }

        /// <summary>The tensor bytes of <see cref="MessagesViaSharedMemory"/>.</summary>
        public long BytesViaSharedMemory { get; init; }

        /// <summary>Messages whose tensor memory went through MPI (to and from ranks on other machines, or with shared memory off).</summary>
        public int MessagesViaMpi { get; init; }

        /// <summary>The tensor bytes of <see cref="MessagesViaMpi"/>.</summary>
        public long BytesViaMpi { get; init; }

        /// <summary>Messages whose CUDA tensor was copied device to device into the receiver's buffer (CUDA IPC; the notice still goes through MPI).</summary>
        public int MessagesViaCudaIpc { get; init; }

        /// <summary>The tensor bytes of <see cref="MessagesViaCudaIpc"/>.</summary>
        public long BytesViaCudaIpc { get; init; }

        /// <summary>Host staging buffers created so far (for device tensors without a CUDA-aware MPI).</summary>
        public int HostStagingBuffers { get; init; }

        /// <summary>Forwards this rank ran before their turn in the table while it waited for a gradient (dynamic execution, PIPPY_DYNAMIC).</summary>
        public int ForwardsRunEarly { get; init; }

        /// <summary>When this rank's action list started: Stopwatch ticks of the machine's monotonic clock, which its processes share.</summary>
        public long StartTimestamp { get; init; }

        /// <summary>How long this rank's action list took, in milliseconds.</summary>
        public double RunMilliseconds { get; init; }

        /// <summary>Of that, the time inside torch: the stages' forward, the loss and autograd.</summary>
        public double ComputeMilliseconds { get; init; }

        /// <summary>Of that, the time inside the transport: posting, sending and waiting for messages.</summary>
        public double CommunicationMilliseconds { get; init; }

        /// <summary>The rest, per action: what the runtime itself costs (bookkeeping between torch and MPI).</summary>
        public double OverheadMicrosecondsPerAction =>
            Timeline.Count == 0 ? 0 : (RunMilliseconds - ComputeMilliseconds - CommunicationMilliseconds) * 1000 / Timeline.Count;
    }
}
