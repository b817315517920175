using System;
using System.Collections.Generic;
using System.Linq;

namespace Pippy.Runtime.Runner
{
    /// <summary>The plan a pipeline prints at Build (<see cref="PipelineOptions.PrintPlan"/>): stages, ranks, replicas, replicated groups.</summary>
    internal static class PlanPrinter
    {
        public static void Print(StageGraph graph, Schedules.ScheduleTable schedule, PipelineTopology topology, IReadOnlyList<int> rankOfStage)
        {
            Console.WriteLine($"[pippy] {graph.ModelName}: {graph.StageCount} stages on {topology.PipelineRanks} ranks, {schedule.Kind}, {schedule.Microbatches} microbatches");
            if (topology.DataParallelSize > 1)
                Console.WriteLine($"[pippy]   {topology.World.Size} ranks = {topology.DataParallelSize} data-parallel replicas x {topology.PipelineRanks} pipeline ranks: " +
                    string.Join("; ", Enumerable.Range(0, topology.DataParallelSize).Select(d => $"replica {d} on ranks {d * topology.PipelineRanks}-{d * topology.PipelineRanks + topology.PipelineRanks - 1}")) +
                    "; gradients summed across replicas in one bucketed allreduce per step");
            foreach (var spec in graph.Stages)
                Console.WriteLine($"[pippy]   stage {spec.Index} (rank {rankOfStage[spec.Index]}): {(spec.Modules.Count == 0 ? "no submodules" : string.Join(", ", spec.Modules))}; in: {string.Join(", ", spec.Inputs)}; out: {string.Join(", ", spec.Outputs)}");
            foreach (var group in graph.Replicated)
                Console.WriteLine($"[pippy]   replicated {group}: broadcast from the lowest stage, gradients summed after each step");
        }

        /// <summary>Each rank's ranges of its own stages' divided module lists (each rank knows only its own).</summary>
        public static void PrintModuleRanges(IEnumerable<PipelineStage> stages, int pipelineRank)
        {
            foreach (var stage in stages)
                foreach (var (_, module) in stage.named_children())
                    if (module is IStageModuleRange)
                        Console.WriteLine($"[pippy]   stage {stage.Index} (rank {pipelineRank}): {module}");
        }
    }
}
