using System;
using System.Linq;
using Pippy.Schedules;

namespace Pippy.Runtime.Runner
{
    /// <summary>
    /// Which table a pipeline runs: the build-time one, unless the options ask for another schedule, stage placement
    /// or microbatch count (then the same schedule code computes the table now, after checking the request), or give
    /// a whole table (<see cref="PipelineOptions.ScheduleCsv"/>). Also checks that the job has the ranks it needs.
    /// </summary>
    internal static class SchedulePlan
    {
        public static ScheduleTable Resolve(StageGraph graph, ScheduleTable buildTimeSchedule, PipelineOptions options, int jobSize)
        {
            foreach (int stage in options.RecomputeStages ?? Array.Empty<int>())
                if (stage < 0 || stage >= graph.StageCount)
                    throw new ArgumentException($"PipelineOptions.RecomputeStages names stage {stage}, but {graph.ModelName} has stages 0 to {graph.StageCount - 1}.");
            if (options.ScheduleCsv is not null)
            {
                if (options.Schedule is not null || options.StagesPerRank is not null || options.Microbatches is not null)
                    throw new ArgumentException("PipelineOptions.ScheduleCsv is a whole table (its rows place the stages, its microbatch numbers count them): leave Schedule, StagesPerRank and Microbatches unset with it.");
                try
                {
                    buildTimeSchedule = CsvSchedule.Load(options.ScheduleCsv, "PipelineOptions.ScheduleCsv", graph.Edges.Select(e => (e.FromStage, e.ToStage)).ToArray(), graph.StageCount);
                }
                catch (InvalidScheduleException e)
                {
                    throw new ArgumentException($"{graph.ModelName} cannot run the schedule of PipelineOptions.ScheduleCsv: {e.Message}", e);
                }
            }
            var kind = options.Schedule ?? buildTimeSchedule.Kind;
            // A custom table places its stages itself, not necessarily as many on every rank.
            bool wholeTable = kind == ScheduleKind.Custom && options.StagesPerRank is null;
            int stagesPerRank = options.StagesPerRank ?? Math.Max(1, buildTimeSchedule.StageCount / buildTimeSchedule.RankCount);
            int microbatches = options.Microbatches ?? buildTimeSchedule.Microbatches;
            int replicas = options.DataParallel;
            if (replicas < 1) throw new ArgumentOutOfRangeException(nameof(options), replicas, "PipelineOptions.DataParallel must be at least 1.");
            if (!wholeTable && (stagesPerRank < 1 || graph.StageCount % stagesPerRank != 0))
                throw new ArgumentException($"{graph.ModelName} has {graph.StageCount} stages, which cannot be placed {stagesPerRank} per rank; choose a divisor of {graph.StageCount} for PipelineOptions.StagesPerRank.");
            int pipelineRanks = wholeTable ? buildTimeSchedule.RankCount : graph.StageCount / stagesPerRank;
            if (jobSize != pipelineRanks * replicas)
                throw new InvalidOperationException(
                    $"{graph.ModelName} has {graph.StageCount} stages and " +
                    (wholeTable ? $"its schedule table places them on {pipelineRanks} rank(s)" : $"runs {stagesPerRank} stage(s) per rank ({kind}), so a pipeline takes {pipelineRanks} rank(s)") +
                    (replicas > 1 ? $", and DataParallel = {replicas} asks for {replicas} pipelines" : "") +
                    $", but this job has {jobSize} rank(s): start it with mpiexec -n {pipelineRanks * replicas}.");
            CheckOptions(graph, options);
            bool buildTime = kind == buildTimeSchedule.Kind && microbatches == buildTimeSchedule.Microbatches
                && (wholeTable || stagesPerRank * buildTimeSchedule.RankCount == buildTimeSchedule.StageCount);
            if (kind == ScheduleKind.Custom && !buildTime)
                throw new ArgumentException(
                    $"{graph.ModelName}'s custom schedule is written for {buildTimeSchedule.Microbatches} microbatches on {buildTimeSchedule.RankCount} ranks; " +
                    "leave PipelineOptions.Microbatches, Schedule and StagesPerRank unset or write the table for that count.");
            if (!buildTime && ScheduleBuilder.CheckRequest(kind, graph.StageCount, stagesPerRank, microbatches) is { Count: > 0 } problems)
                throw new ArgumentException($"{graph.ModelName} cannot run {kind} with {stagesPerRank} stage(s) per rank and {microbatches} microbatches: {string.Join("; ", problems)}.");
            return buildTime ? buildTimeSchedule : ScheduleBuilder.Build(kind, graph.Links(kind, stagesPerRank), microbatches);
        }

        private static void CheckOptions(StageGraph graph, PipelineOptions options)
        {
            var unknown = options.Inputs.Keys.Where(k => !graph.ModelInputs.Contains(k)).ToArray();
            if (unknown.Length > 0)
                throw new ArgumentException(
                    $"PipelineOptions.Inputs names {string.Join(", ", unknown.Select(u => $"'{u}'"))}, but {graph.ModelName}.forward takes {string.Join(", ", graph.ModelInputs.Select(i => $"'{i}'"))}.");
            if (options.Outputs.Count > graph.OutputCount)
                throw new ArgumentException($"PipelineOptions.Outputs has {options.Outputs.Count} entries, but {graph.ModelName}.forward returns {graph.OutputCount} value(s).");
        }
    }
}
