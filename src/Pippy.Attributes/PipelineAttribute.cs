using System;
using Pippy.Schedules;

namespace Pippy
{
    /// <summary>
    /// Marks a <c>partial</c> TorchSharp module class as a pipeline. The Pippy source generator reads its
    /// <c>forward</c> method, cuts it into stages at the fields marked <see cref="SplitEndAttribute"/>, and emits
    /// a nested <c>Pipeline</c> class (stage graph, stage modules, schedule table, <c>Build</c>).
    /// </summary>
    [AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
    public sealed class PipelineAttribute : Attribute
    {
        /// <summary>The schedule whose table is computed and validated at build time.</summary>
        public ScheduleKind Schedule { get; set; } = ScheduleKind.GPipe;

        /// <summary>
        /// The microbatch count of the build-time table, and the default of <c>PipelineOptions.Microbatches</c>.
        /// Another count chosen at run time is computed by the same schedule code.
        /// </summary>
        public int Microbatches { get; set; } = DefaultMicrobatches;

        /// <summary>
        /// How many stages each rank runs: 1 for GPipe and 1F1B, v for the looped schedules (stage s on rank s mod p),
        /// 2 for ZeroBubbleV (rank r runs stages r and 2p-1-r). The rank count is the stage count divided by it.
        /// </summary>
        public int StagesPerRank { get; set; } = 1;

        /// <summary>
        /// A custom schedule: the name of a CSV file added to the project as <c>&lt;AdditionalFiles Include="..." /&gt;</c>,
        /// in torch.distributed.pipelining's format (one row per rank, one action per cell). It replaces
        /// <see cref="Schedule"/>, <see cref="Microbatches"/> and <see cref="StagesPerRank"/>, which the table itself fixes.
        /// </summary>
        public string? ScheduleFile { get; set; }

        /// <summary>The default microbatch count.</summary>
        public const int DefaultMicrobatches = 4;
    }
}
