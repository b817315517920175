using System;
using System.Collections.Generic;
using System.Linq;

namespace Pippy.Schedules
{
    /// <summary>The outcome of running a table in lockstep.</summary>
    public sealed class SimulationResult
    {
        public SimulationResult(int steps, string? deadlock)
        {
            Steps = steps;
            Deadlock = deadlock;
        }

        /// <summary>Lockstep rounds until every rank finished (or got stuck).</summary>
        public int Steps { get; }

        /// <summary>Null when every rank finished; otherwise which rank waits for what, at which step.</summary>
        public string? Deadlock { get; }

        public bool Completed => Deadlock is null;
    }

    /// <summary>
    /// Runs a lowered table in lockstep the way the runtime does: sends never block, a receive waits for the
    /// matching sends, a compute waits for its data (a receive on this rank, or the producing compute when both
    /// stages share a rank). When no rank can move before all are done, the table would hang: report it.
    /// </summary>
    public static class ScheduleSimulator
    {
        public static SimulationResult Run(ScheduleTable table, StageLinks links)
        {
            int ranks = table.RankCount;
            var next = new int[ranks];
            var done = new HashSet<PipelineAction>();
            var actions = new HashSet<PipelineAction>(Enumerable.Range(0, ranks).SelectMany(r => table.ActionsOf(r)));
            int steps = 0;
            while (true)
            {
                var runnable = new List<int>();
                bool finished = true;
                for (int rank = 0; rank < ranks; rank++)
                {
                    if (next[rank] >= table.ActionsOf(rank).Count) continue;
                    finished = false;
                    if (WaitsFor(table.ActionsOf(rank)[next[rank]], links, actions, done) is null) runnable.Add(rank);
                }
                if (finished) return new SimulationResult(steps, null);
                if (runnable.Count == 0)
                {
                    var stuck = Enumerable.Range(0, ranks)
                        .Where(r => next[r] < table.ActionsOf(r).Count)
                        .Select(r => $"rank {r} at action {next[r]} ({table.ActionsOf(r)[next[r]]}) waits for {WaitsFor(table.ActionsOf(r)[next[r]], links, actions, done)}");
                    return new SimulationResult(steps, $"deadlock at step {steps}: {string.Join("; ", stuck)}");
                }
                // Lockstep: everything runnable at the start of the step completes in it.
                foreach (int rank in runnable) done.Add(table.ActionsOf(rank)[next[rank]++]);
                steps++;
            }
        }

        /// <summary>
        /// Runs the table in time: each rank runs its actions in order, an action starting when its rank is free and
        /// what it needs has finished; compute actions take their <paramref name="costs"/>, communication takes
        /// nothing. Throws <see cref="InvalidScheduleException"/> when the table would hang.
        /// </summary>
        public static ScheduleMetrics Measure(ScheduleTable table, StageLinks links, ScheduleCosts costs) =>
            Measure(table, links, (_, action) => costs.Of(action.Kind));

        /// <summary>
        /// As <see cref="Measure(ScheduleTable, StageLinks, ScheduleCosts)"/>, each action taking what
        /// <paramref name="cost"/> says for it on its rank: replaying measured compute times gives the step time the
        /// schedule allows with the compute as it ran (communication free), against which a measured step is compared.
        /// </summary>
        public static ScheduleMetrics Measure(ScheduleTable table, StageLinks links, Func<int, PipelineAction, double> cost)
        {
            int ranks = table.RankCount;
            var next = new int[ranks];
            var free = new double[ranks];
            var busy = new double[ranks];
            var finished = new Dictionary<PipelineAction, double>();
            var timeline = new List<TimedAction>();
            var names = new HashSet<PipelineAction>(Enumerable.Range(0, ranks).SelectMany(r => table.ActionsOf(r)));
            bool progress = true;
            while (progress)
            {
                progress = false;
                for (int rank = 0; rank < ranks; rank++)
                {
                    while (next[rank] < table.ActionsOf(rank).Count)
                    {
                        var action = table.ActionsOf(rank)[next[rank]];
                        var needs = Needs(action, links, names).ToArray();
                        if (needs.Any(n => !finished.ContainsKey(n))) break;
                        double start = needs.Select(n => finished[n]).DefaultIfEmpty(0).Max();
                        start = Math.Max(start, free[rank]);
                        double end = start + cost(rank, action);
                        finished[action] = end;
                        free[rank] = end;
                        busy[rank] += end - start;
                        timeline.Add(new TimedAction(rank, action, start, end));
                        next[rank]++;
                        progress = true;
                    }
                }
            }
            if (Enumerable.Range(0, ranks).Any(r => next[r] < table.ActionsOf(r).Count))
                throw new InvalidScheduleException($"{table.Kind} table would hang: {Run(table, links).Deadlock}");
            var peaks = Enumerable.Range(0, ranks).Select(rank =>
            {
                int holding = 0, peak = 0;
                foreach (var a in table.ActionsOf(rank))
                {
                    if (a.Kind == ActionKind.Forward) peak = Math.Max(peak, ++holding);
                    else if (a.Kind == ActionKind.Backward || a.Kind == ActionKind.BackwardWeight) holding--;
                }
                return peak;
            }).ToArray();
            return new ScheduleMetrics(free.DefaultIfEmpty(0).Max(), busy, peaks, timeline);
        }

        /// <summary>What must have finished before <paramref name="a"/> can run; <paramref name="table"/>'s actions tell B from I.</summary>
        private static IEnumerable<PipelineAction> Needs(PipelineAction a, StageLinks links, HashSet<PipelineAction> table)
        {
            int s = a.Stage, mb = a.Microbatch;
            bool sameRank(int other) => links.RankOf(other) == links.RankOf(s);
            PipelineAction Act(int stage, ActionKind kind) => new PipelineAction(stage, kind, mb);
            PipelineAction Backward(int stage) => table.Contains(Act(stage, ActionKind.BackwardInput)) ? Act(stage, ActionKind.BackwardInput) : Act(stage, ActionKind.Backward);
            return a.Kind switch
            {
                ActionKind.Forward => links.Producers(s).Select(p => sameRank(p) ? Act(p, ActionKind.Forward) : Act(s, ActionKind.ReceiveForward)),
                ActionKind.SendForward => new[] { Act(s, ActionKind.Forward) },
                ActionKind.ReceiveForward => links.Producers(s).Where(p => !sameRank(p)).Select(p => Act(p, ActionKind.SendForward)),
                ActionKind.Backward or ActionKind.BackwardInput => new[] { Act(s, ActionKind.Forward) }
                    .Concat(links.Consumers(s).Select(c => sameRank(c) ? Backward(c) : Act(s, ActionKind.ReceiveBackward))),
                ActionKind.BackwardWeight => new[] { Act(s, ActionKind.BackwardInput) },
                ActionKind.SendBackward => new[] { Backward(s) },
                ActionKind.ReceiveBackward => links.Consumers(s).Where(c => !sameRank(c)).Select(c => Act(c, ActionKind.SendBackward)),
                _ => Array.Empty<PipelineAction>(),
            };
        }

        /// <summary>The first action that must happen before <paramref name="a"/> and has not, or null.</summary>
        private static string? WaitsFor(PipelineAction a, StageLinks links, HashSet<PipelineAction> table, HashSet<PipelineAction> done) =>
            Needs(a, links, table).Where(need => !done.Contains(need)).Select(need => need.ToString()).FirstOrDefault();
    }
}
