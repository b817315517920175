using System;
using System.Collections.Generic;
using System.Linq;

namespace Pippy.Runtime.Runner
{
    /// <summary>The plan a pipeline prints at Build (<see cref="PipelineOptions.PrintPlan"/>): stages, ranks, replicas, replicated groups.</summary>
    internal static class PlanPrinter
    {
        /// <summary>
        /// Prints the plan, on one rank: the stages in order, each with its rank, submodules, the part of every divided
        /// module list it runs (<paramref name="moduleRanges"/>), its inputs and outputs.
        /// </summary>
        public static void Print(StageGraph graph, Schedules.ScheduleTable schedule, PipelineTopology topology, IReadOnlyList<int> rankOfStage,
            IReadOnlyDictionary<int, string[]> moduleRanges)
        {
            Console.WriteLine($"[pippy] {graph.ModelName}: {graph.StageCount} stages on {topology.PipelineRanks} ranks, {schedule.Kind}, {schedule.Microbatches} microbatches");
            if (topology.DataParallelSize > 1)
                Console.WriteLine($"[pippy]   {topology.World.Size} ranks = {topology.DataParallelSize} data-parallel replicas x {topology.PipelineRanks} pipeline ranks: " +
                    string.Join("; ", Enumerable.Range(0, topology.DataParallelSize).Select(d => $"replica {d} on ranks {d * topology.PipelineRanks}-{d * topology.PipelineRanks + topology.PipelineRanks - 1}")) +
                    "; gradients summed across replicas in one bucketed allreduce per step");
            foreach (var spec in graph.Stages)
            {
                var ranges = moduleRanges.TryGetValue(spec.Index, out var r) && r.Length > 0 ? $" ({string.Join("; ", r)})" : "";
                string modules = spec.Modules.Count == 0 ? "no submodules" : string.Join(", ", spec.Modules);
                Console.WriteLine($"[pippy]   stage {spec.Index} (rank {rankOfStage[spec.Index]}): {modules}{ranges}; in: {string.Join(", ", spec.Inputs)}{Plain(spec)}; out: {string.Join(", ", spec.Outputs)}");
            }
            foreach (var group in graph.Replicated)
                Console.WriteLine($"[pippy]   replicated {group}: broadcast from the lowest stage, gradients summed after each step");
            Console.Out.Flush();
        }

        /// <summary>
        /// For a model built lazily: how many tensors, and how much memory, each rank gave its stages (<paramref name="given"/>:
        /// a count and bytes per rank, as doubles: exact to 2^53); nothing when no rank gave any.
        /// </summary>
        public static void PrintMaterialized(IReadOnlyList<double> given, Func<int, IEnumerable<int>> stagesOfRank)
        {
            int ranks = given.Count / 2;
            if (Enumerable.Range(0, ranks).All(r => given[2 * r] == 0)) return;
            Console.WriteLine("[pippy]   built lazily: each rank gave memory to its own stages only: " + string.Join("; ", Enumerable.Range(0, ranks).Select(r =>
                $"rank {r} {given[2 * r]} tensors of stage(s) {string.Join(", ", stagesOfRank(r))} ({given[2 * r + 1] / (1 << 20):0} MiB)")));
            Console.Out.Flush();
        }

        /// <summary>Each stage's parts of divided module lists (every rank divides every list alike), by stage index.</summary>
        public static IReadOnlyDictionary<int, string[]> ModuleRanges(IEnumerable<PipelineStage> stages) =>
            stages.ToDictionary(
                stage => stage.Index,
                stage => stage.named_children().Select(c => c.module).OfType<IStageModuleRange>().Select(m => m.ToString()!).ToArray());

        /// <summary>The plain arguments of forward a stage reads (given to it, not sent): ", plain: causal, window".</summary>
        private static string Plain(StageSpec spec) => spec.Arguments.Count == 0 ? "" : $", plain: {string.Join(", ", spec.Arguments)}";
    }
}
