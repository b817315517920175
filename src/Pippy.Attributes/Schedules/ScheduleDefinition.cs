using System.Collections.Generic;
using System.Linq;

namespace Pippy.Schedules
{
    /// <summary>How a schedule kind places its stages on ranks.</summary>
    public enum StageLayout
    {
        /// <summary>Stage k on rank k: exactly one stage per rank.</summary>
        OneStagePerRank,

        /// <summary>Any number v of stages per rank, in a loop: stage s on rank s mod p (stage c*p + r on rank r).</summary>
        Looped,

        /// <summary>Exactly two stages per rank in a V: rank r holds stage r and stage 2p-1-r.</summary>
        V,

        /// <summary>Wherever the schedule's own table puts them (a custom CSV table: the row that runs a stage's actions).</summary>
        FromTable,
    }

    /// <summary>
    /// Everything one schedule kind means, in one place: its kind, how it places stages on ranks, what it asks of the
    /// stage and microbatch counts (the refusals <see cref="SchedulePlacement"/> and <see cref="ScheduleBuilder"/>
    /// report) and how it orders the compute actions. <see cref="ScheduleDefinitions"/> lists one per
    /// <see cref="ScheduleKind"/>; lowering, validation and simulation are shared by all of them.
    /// </summary>
    public abstract class ScheduleDefinition
    {
        /// <summary>The kind this definition computes, as written in <c>[Pipeline(Schedule = ...)]</c>.</summary>
        public abstract ScheduleKind Kind { get; }

        /// <summary>One line: what the schedule computes.</summary>
        public abstract string Description { get; }

        /// <summary>How the stages are placed on ranks.</summary>
        public abstract StageLayout Layout { get; }

        /// <summary>The only stages-per-rank count the layout allows (1 for one stage per rank, 2 in a V), or null when any count is allowed.</summary>
        public int? RequiredStagesPerRank => Layout switch
        {
            StageLayout.OneStagePerRank => 1,
            StageLayout.V => 2,
            _ => null,
        };

        /// <summary>Whether <see cref="ComputeOnly"/> computes the table (false for a table read from a file).</summary>
        public virtual bool IsComputed => true;

        /// <summary>
        /// The rank of every stage: rank k for one stage per rank, s mod p looped, and r / 2p-1-r in a V. A layout
        /// that is not computed (<see cref="StageLayout.FromTable"/>) gets s mod p, which <see cref="CheckPlacement"/>
        /// never lets a table be built on.
        /// </summary>
        public IReadOnlyList<int> Ranks(int stageCount, int stagesPerRank)
        {
            int ranks = stageCount / stagesPerRank;
            return Enumerable.Range(0, stageCount)
                .Select(s => Layout == StageLayout.V ? (s < ranks ? s : 2 * ranks - 1 - s) : s % ranks)
                .ToArray();
        }

        /// <summary>What is wrong with placing <paramref name="stageCount"/> stages, <paramref name="stagesPerRank"/> per rank (empty when nothing is).</summary>
        public virtual IReadOnlyList<string> CheckPlacement(int stageCount, int stagesPerRank)
        {
            var problems = new List<string>();
            if (stagesPerRank < 1) problems.Add($"StagesPerRank = {stagesPerRank}: each rank runs at least one stage");
            else if (stageCount % stagesPerRank != 0) problems.Add($"{stageCount} stages cannot be shared evenly by ranks of {stagesPerRank} stages each; make the stage count a multiple of StagesPerRank");
            if (problems.Count > 0) return problems;
            if (Layout == StageLayout.OneStagePerRank && stagesPerRank != 1)
                problems.Add($"{Kind} runs one stage per rank, but StagesPerRank = {stagesPerRank}; use Interleaved1F1B, LoopedBFS or InterleavedZeroBubble for several");
            if (Layout == StageLayout.V && stagesPerRank != 2)
                problems.Add($"{Kind} places exactly 2 stages per rank in a V, but StagesPerRank = {stagesPerRank}; set StagesPerRank = 2 (and an even stage count)");
            return problems;
        }

        /// <summary>What is wrong with running this schedule on these counts: the placement first, then the microbatch count (empty when nothing is).</summary>
        public IReadOnlyList<string> Check(int stageCount, int stagesPerRank, int microbatches)
        {
            var problems = CheckPlacement(stageCount, stagesPerRank).ToList();
            if (problems.Count > 0) return problems;
            if (CheckMicrobatches(stageCount / stagesPerRank, microbatches) is { } problem) problems.Add(problem);
            return problems;
        }

        /// <summary>What the schedule asks of the microbatch count on <paramref name="ranks"/> ranks, once the placement is fine; null when it asks nothing more.</summary>
        protected virtual string? CheckMicrobatches(int ranks, int microbatches) => null;

        /// <summary>
        /// The compute actions only (F, B, I, W) for every rank, with the stages placed as <see cref="Ranks"/> places
        /// them; <see cref="ScheduleBuilder.Build"/> checks the request first and lowers the result.
        /// </summary>
        public abstract ScheduleTable ComputeOnly(StageLinks links, int microbatches);

        public override string ToString() => $"{Kind}: {Description}";
    }
}
