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
            int steps = 0;
            while (true)
            {
                var runnable = new List<int>();
                bool finished = true;
                for (int rank = 0; rank < ranks; rank++)
                {
                    if (next[rank] >= table.ActionsOf(rank).Count) continue;
                    finished = false;
                    if (WaitsFor(table.ActionsOf(rank)[next[rank]], links, done) is null) runnable.Add(rank);
                }
                if (finished) return new SimulationResult(steps, null);
                if (runnable.Count == 0)
                {
                    var stuck = Enumerable.Range(0, ranks)
                        .Where(r => next[r] < table.ActionsOf(r).Count)
                        .Select(r => $"rank {r} at action {next[r]} ({table.ActionsOf(r)[next[r]]}) waits for {WaitsFor(table.ActionsOf(r)[next[r]], links, done)}");
                    return new SimulationResult(steps, $"deadlock at step {steps}: {string.Join("; ", stuck)}");
                }
                // Lockstep: everything runnable at the start of the step completes in it.
                foreach (int rank in runnable) done.Add(table.ActionsOf(rank)[next[rank]++]);
                steps++;
            }
        }

        /// <summary>The first action that must happen before <paramref name="a"/> and has not, or null.</summary>
        private static string? WaitsFor(PipelineAction a, StageLinks links, HashSet<PipelineAction> done)
        {
            int s = a.Stage, mb = a.Microbatch;
            bool sameRank(int other) => links.RankOf(other) == links.RankOf(s);
            PipelineAction Act(int stage, ActionKind kind) => new PipelineAction(stage, kind, mb);
            // A stage's input gradient exists once its B or its I ran.
            PipelineAction Backward(int stage) => done.Contains(Act(stage, ActionKind.BackwardInput)) ? Act(stage, ActionKind.BackwardInput) : Act(stage, ActionKind.Backward);
            IEnumerable<PipelineAction> needs = a.Kind switch
            {
                ActionKind.Forward => links.Producers(s).Select(p => sameRank(p) ? Act(p, ActionKind.Forward) : Act(s, ActionKind.ReceiveForward)),
                ActionKind.SendForward => new[] { Act(s, ActionKind.Forward) },
                ActionKind.ReceiveForward => links.Producers(s).Where(p => !sameRank(p)).Select(p => Act(p, ActionKind.SendForward)),
                ActionKind.Backward or ActionKind.BackwardInput => new[] { Act(s, ActionKind.Forward) }
                    .Concat(links.Consumers(s).Select(c => sameRank(c) ? Backward(c) : Act(s, ActionKind.ReceiveBackward))),
                ActionKind.BackwardWeight => new[] { Act(s, ActionKind.BackwardInput) },
                ActionKind.SendBackward => new[] { Backward(s) },
                ActionKind.ReceiveBackward => links.Consumers(s).Where(c => !sameRank(c)).Select(c => Act(c, ActionKind.SendBackward)),
                _ => new PipelineAction[0],
            };
            foreach (var need in needs)
                if (!done.Contains(need)) return need.ToString();
            return null;
        }
    }
}
