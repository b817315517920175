namespace Pippy.Schedules
{
    /// <summary>The pipeline schedules Pippy can compute. See docs/schedules.md for each one's picture and costs.</summary>
    public enum ScheduleKind
    {
        /// <summary>Fill-drain: all forwards of every microbatch, then all backwards (GPipe). One stage per rank.</summary>
        GPipe = 0,

        /// <summary>One forward, one backward: after a warm-up, each rank alternates, holding at most p - r microbatches. One stage per rank.</summary>
        OneFOneB = 1,

        /// <summary>Megatron's interleaved 1F1B: v stages per rank, placed in a loop (stage s on rank s mod p); m a multiple of p.</summary>
        Interleaved1F1B = 2,

        /// <summary>Breadth-first over the looped stages: all microbatches through each local stage before the next.</summary>
        LoopedBFS = 3,

        /// <summary>Zero-bubble (ZB-H1 on one stage per rank, looped for more): backward split into I and W, W filling the bubbles.</summary>
        InterleavedZeroBubble = 4,

        /// <summary>Zero-bubble V: two stages per rank in a V (rank r holds stages r and 2p-1-r), backward split into I and W.</summary>
        ZeroBubbleV = 5,

        /// <summary>DualPipeV: two stages per rank in a V, forward and backward of different microbatches paired in the steady state; m &gt;= 2p.</summary>
        DualPipeV = 7,

        /// <summary>A table of your own, read from a CSV file in torch.distributed.pipelining's format ([Pipeline(ScheduleFile = ...)]).</summary>
        Custom = 6,
    }
}
