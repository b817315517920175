using System;
using System.Collections.Generic;
using System.Linq;

namespace Pippy.Schedules
{
    /// <summary>
    /// Zero-bubble schedules (Qi et al., "Zero Bubble Pipeline Parallelism"): the backward is split into the input
    /// gradient I, which the previous stage waits for, and the weight gradient W, which nobody waits for. The order is
    /// made by running the pipeline in time with unit costs and letting each idle rank pick, in this order: the ready
    /// I with the lowest microbatch (the critical path), else a ready F while the rank holds fewer microbatches than its
    /// limit (1F1B's p - r on the first local stage, times the number of its stages a microbatch visits; for ZB-V the
    /// paper's 2p stage-activations over both of the rank's stages), else the oldest ready W (filling what would be a bubble).
    /// Memory is counted until W, since the runtime's I keeps the autograd graph until its W.
    /// Since the order is what a feasible run did, its lowered table cannot deadlock (the simulator checks anyway).
    /// Shared by the definitions <see cref="InterleavedZeroBubbleSchedule"/> (looped) and <see cref="ZeroBubbleVSchedule"/> (in a V).
    /// </summary>
    public static class ZeroBubbleSchedules
    {
        /// <summary>The compute actions of <paramref name="schedule"/>, a zero-bubble kind, its memory bound chosen by its layout.</summary>
        public static ScheduleTable ComputeOnly(ScheduleDefinition schedule, StageLinks links, int microbatches)
        {
            var kind = schedule.Kind;
            bool v = schedule.Layout == StageLayout.V;
            int stages = links.StageCount, ranks = links.RankCount, m = microbatches;
            var done = new Dictionary<PipelineAction, int>(); // action -> finish time
            var order = Enumerable.Range(0, ranks).Select(_ => new List<PipelineAction>()).ToArray();
            var busyUntil = new int[ranks];
            var local = Enumerable.Range(0, ranks).Select(r => Enumerable.Range(0, stages).Where(s => links.RankOf(s) == r).ToArray()).ToArray();
            int total = stages * m * 3;
            int time = 0;
            while (done.Count < total)
            {
                bool started = false;
                for (int r = 0; r < ranks; r++)
                {
                    if (busyUntil[r] > time) continue;
                    var next = Pick(v, r, local[r], links, m, done, time);
                    if (next is not PipelineAction action) continue;
                    done[action] = time + 1;
                    busyUntil[r] = time + 1;
                    order[r].Add(action);
                    started = true;
                }
                if (!started && busyUntil.All(b => b <= time) && done.Values.All(t => t <= time))
                    throw new InvalidScheduleException($"{kind}: no rank can start any action at time {time} ({done.Count} of {total} done)");
                time++;
            }
            return new ScheduleTable(kind, stages, microbatches, order);
        }

        private static PipelineAction? Pick(bool v, int rank, int[] local, StageLinks links, int m, Dictionary<PipelineAction, int> done, int time)
        {
            bool Done(PipelineAction a) => done.TryGetValue(a, out int t) && t <= time;
            bool Started(PipelineAction a) => done.ContainsKey(a);
            var candidates = new List<(int Priority, int Microbatch, int Stage, PipelineAction Action)>();
            int first = local[0];
            int holding, limit;
            if (v)
            {
                // ZB-V, as the paper bounds its memory: 1F1B's p microbatches of a whole stage, which is 2p activations
                // of its half-deep stages, on every rank. Count what both local stages hold (forward started, W not
                // done); a new microbatch enters the first stage only while a place stays free for a second-stage
                // forward, so the V's way back never waits for a place that only the first stage could free.
                holding = Enumerable.Range(0, m).Sum(mb => local.Count(stage =>
                    Started(new PipelineAction(stage, ActionKind.Forward, mb)) && !Done(new PipelineAction(stage, ActionKind.BackwardWeight, mb))));
                limit = 2 * links.RankCount;
            }
            else
            {
                holding = Enumerable.Range(0, m).Count(mb => Started(new PipelineAction(first, ActionKind.Forward, mb)) && !Done(new PipelineAction(first, ActionKind.BackwardWeight, mb)));
                // 1F1B's bound (p - r) on the first local stage, times the stages a microbatch visits on this rank.
                limit = Math.Max(1, (links.RankCount - rank) * local.Length);
            }
            foreach (int s in local)
            {
                for (int mb = 0; mb < m; mb++)
                {
                    var f = new PipelineAction(s, ActionKind.Forward, mb);
                    if (!Started(f))
                    {
                        bool inputsReady = links.Producers(s).All(p => Done(new PipelineAction(p, ActionKind.Forward, mb)));
                        bool earlierStarted = mb == 0 || Started(new PipelineAction(s, ActionKind.Forward, mb - 1));
                        bool fits = v ? (s == first ? holding + 1 < limit : holding < limit) : (s != first || holding < limit);
                        if (inputsReady && earlierStarted && fits) candidates.Add((1, mb, -s, f));
                        break; // forwards of one stage run in microbatch order
                    }
                }
                for (int mb = 0; mb < m; mb++)
                {
                    var i = new PipelineAction(s, ActionKind.BackwardInput, mb);
                    if (Started(i)) continue;
                    if (Done(new PipelineAction(s, ActionKind.Forward, mb)) && links.Consumers(s).All(c => Done(new PipelineAction(c, ActionKind.BackwardInput, mb))))
                        candidates.Add((0, mb, -s, i));
                    break; // input gradients of one stage run in microbatch order
                }
                for (int mb = 0; mb < m; mb++)
                {
                    var w = new PipelineAction(s, ActionKind.BackwardWeight, mb);
                    if (Started(w)) continue;
                    if (Done(new PipelineAction(s, ActionKind.BackwardInput, mb))) candidates.Add((2, mb, -s, w));
                    break;
                }
            }
            if (candidates.Count == 0) return null;
            return candidates.OrderBy(c => c.Priority).ThenBy(c => c.Microbatch).ThenBy(c => c.Stage).First().Action;
        }
    }
}
