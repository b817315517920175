using System.Collections.Generic;

namespace Pippy.Schedules
{
    /// <summary>
    /// Which rank runs which stage, for each schedule, and what a schedule asks of stages and microbatches: lookups of
    /// the kind's <see cref="ScheduleDefinition"/> (see <see cref="ScheduleDefinitions"/>).
    /// </summary>
    public static class SchedulePlacement
    {
        /// <summary>Stages placed in a V: rank r holds stage r and stage 2p-1-r.</summary>
        public static bool IsV(ScheduleKind kind) => Of(kind).Layout == StageLayout.V;

        /// <summary>Schedules that run one stage per rank.</summary>
        public static bool IsSingleStage(ScheduleKind kind) => Of(kind).Layout == StageLayout.OneStagePerRank;

        /// <summary>The rank of every stage: rank k for one stage per rank, s mod p looped, and r / 2p-1-r in a V.</summary>
        public static IReadOnlyList<int> Ranks(ScheduleKind kind, int stageCount, int stagesPerRank) => Of(kind).Ranks(stageCount, stagesPerRank);

        /// <summary>What is wrong with running <paramref name="kind"/> on these counts (empty when nothing is).</summary>
        public static IReadOnlyList<string> Check(ScheduleKind kind, int stageCount, int stagesPerRank, int microbatches) =>
            Of(kind).Check(stageCount, stagesPerRank, microbatches);

        /// <summary>What is wrong with placing <paramref name="stageCount"/> stages, <paramref name="stagesPerRank"/> per rank, for <paramref name="kind"/>.</summary>
        public static IReadOnlyList<string> CheckPlacement(ScheduleKind kind, int stageCount, int stagesPerRank) =>
            Of(kind).CheckPlacement(stageCount, stagesPerRank);

        /// <summary>
        /// The definition of <paramref name="kind"/>. A value that is no schedule kind (an int cast to the enum) is
        /// placed in a loop and asks nothing of the counts, so that <see cref="ScheduleBuilder.CheckRequest"/> is what
        /// refuses it, naming it.
        /// </summary>
        private static ScheduleDefinition Of(ScheduleKind kind) => ScheduleDefinitions.TryFor(kind) ?? new UnknownSchedule(kind);

        private sealed class UnknownSchedule(ScheduleKind kind) : ScheduleDefinition
        {
            public override ScheduleKind Kind => kind;
            public override string Description => "not a known schedule";
            public override StageLayout Layout => StageLayout.Looped;
            public override bool IsComputed => false;
            public override ScheduleTable ComputeOnly(StageLinks links, int microbatches) => throw new InvalidScheduleException($"{kind} is not a known schedule");
        }
    }
}
