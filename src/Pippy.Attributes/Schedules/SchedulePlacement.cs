using System.Collections.Generic;
using System.Linq;

namespace Pippy.Schedules
{
    /// <summary>Which rank runs which stage, for each schedule, and what a schedule asks of stages and microbatches.</summary>
    public static class SchedulePlacement
    {
        /// <summary>Stages placed in a V: rank r holds stage r and stage 2p-1-r.</summary>
        public static bool IsV(ScheduleKind kind) => kind == ScheduleKind.ZeroBubbleV || kind == ScheduleKind.DualPipeV;

        /// <summary>Schedules that run one stage per rank.</summary>
        public static bool IsSingleStage(ScheduleKind kind) => kind == ScheduleKind.GPipe || kind == ScheduleKind.OneFOneB;

        /// <summary>The rank of every stage: rank k for one stage per rank, s mod p looped, and r / 2p-1-r in a V.</summary>
        public static IReadOnlyList<int> Ranks(ScheduleKind kind, int stageCount, int stagesPerRank)
        {
            int ranks = stageCount / stagesPerRank;
            return Enumerable.Range(0, stageCount)
                .Select(s => IsV(kind) ? (s < ranks ? s : 2 * ranks - 1 - s) : s % ranks)
                .ToArray();
        }

        /// <summary>What is wrong with running <paramref name="kind"/> on these counts (empty when nothing is).</summary>
        public static IReadOnlyList<string> Check(ScheduleKind kind, int stageCount, int stagesPerRank, int microbatches)
        {
            var problems = CheckPlacement(kind, stageCount, stagesPerRank).ToList();
            if (problems.Count > 0) return problems;
            int ranks = stageCount / stagesPerRank;
            if (kind == ScheduleKind.OneFOneB && microbatches < ranks)
                problems.Add($"1F1B needs at least as many microbatches as ranks ({ranks}), but Microbatches = {microbatches}; use more microbatches or GPipe");
            if (kind == ScheduleKind.DualPipeV && microbatches < 2 * ranks)
                problems.Add($"DualPipeV needs at least twice as many microbatches as ranks ({2 * ranks}), but Microbatches = {microbatches}");
            if (kind == ScheduleKind.Interleaved1F1B && microbatches % ranks != 0)
                problems.Add($"Interleaved1F1B needs the microbatch count to be a multiple of the rank count ({ranks}), but Microbatches = {microbatches}");
            return problems;
        }

        /// <summary>What is wrong with placing <paramref name="stageCount"/> stages, <paramref name="stagesPerRank"/> per rank, for <paramref name="kind"/>.</summary>
        public static IReadOnlyList<string> CheckPlacement(ScheduleKind kind, int stageCount, int stagesPerRank)
        {
            var problems = new List<string>();
            if (kind == ScheduleKind.Custom)
            {
                problems.Add("a Custom schedule is read from its CSV file ([Pipeline(ScheduleFile = ...)]), not computed");
                return problems;
            }
            if (stagesPerRank < 1) problems.Add($"StagesPerRank = {stagesPerRank}: each rank runs at least one stage");
            else if (stageCount % stagesPerRank != 0) problems.Add($"{stageCount} stages cannot be shared evenly by ranks of {stagesPerRank} stages each; make the stage count a multiple of StagesPerRank");
            if (problems.Count > 0) return problems;
            if (IsSingleStage(kind) && stagesPerRank != 1)
                problems.Add($"{kind} runs one stage per rank, but StagesPerRank = {stagesPerRank}; use Interleaved1F1B, LoopedBFS or InterleavedZeroBubble for several");
            if (IsV(kind) && stagesPerRank != 2)
                problems.Add($"{kind} places exactly 2 stages per rank in a V, but StagesPerRank = {stagesPerRank}; set StagesPerRank = 2 (and an even stage count)");
            return problems;
        }
    }
}
