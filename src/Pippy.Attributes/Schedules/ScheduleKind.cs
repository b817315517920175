namespace Pippy.Schedules
{
    /// <summary>
    /// The pipeline schedules Pippy can compute. Each kind is defined in one place, its <see cref="ScheduleDefinition"/>
    /// (placement, limits, table; listed in <see cref="ScheduleDefinitions"/>). See docs/schedules.md for each one's
    /// picture and costs. The values are compiled into user assemblies (<c>[Pipeline(Schedule = ...)]</c> is stored
    /// as its int): never renumber one; a new kind takes the next unused value.
    /// </summary>
    public enum ScheduleKind
    {
        /// <summary>Fill-drain: all forwards of every microbatch, then all backwards (GPipe). One stage per rank. <see cref="GPipeSchedule"/>.</summary>
        GPipe = 0,

        /// <summary>One forward, one backward: after a warm-up, each rank alternates, holding at most p - r microbatches. One stage per rank. <see cref="OneFOneBSchedule"/>.</summary>
        OneFOneB = 1,

        /// <summary>Megatron's interleaved 1F1B: v stages per rank, placed in a loop (stage s on rank s mod p); any m (no extra idle time for m &gt;= p). <see cref="Interleaved1F1BSchedule"/>.</summary>
        Interleaved1F1B = 2,

        /// <summary>Breadth-first over the looped stages: all microbatches through each local stage before the next. <see cref="LoopedBfsSchedule"/>.</summary>
        LoopedBFS = 3,

        /// <summary>Zero-bubble (ZB-H1 on one stage per rank, looped for more): backward split into I and W, W filling the bubbles. <see cref="InterleavedZeroBubbleSchedule"/>.</summary>
        InterleavedZeroBubble = 4,

        /// <summary>Zero-bubble V: two stages per rank in a V (rank r holds stages r and 2p-1-r), backward split into I and W. <see cref="ZeroBubbleVSchedule"/>.</summary>
        ZeroBubbleV = 5,

        /// <summary>A table of your own, read from a CSV file in torch.distributed.pipelining's format ([Pipeline(ScheduleFile = ...)]). <see cref="CsvSchedule"/>.</summary>
        Custom = 6,

        /// <summary>DualPipeV: two stages per rank in a V, forward and backward of different microbatches paired in the steady state; m &gt;= 2p. <see cref="DualPipeVSchedule"/>.</summary>
        DualPipeV = 7,
    }
}
