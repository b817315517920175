using System.Collections.Generic;
using System.Linq;

namespace Pippy.Schedules
{
    /// <summary>
    /// Schedules over v stages per rank placed in a loop (stage c*p + r on rank r): Megatron's interleaved 1F1B and
    /// the breadth-first looped schedule.
    /// </summary>
    public static class InterleavedSchedules
    {
        /// <summary>
        /// Interleaved 1F1B. Forwards go through the local chunks p microbatches at a time (chunk (k/p) mod v, microbatch
        /// (k/(p v)) p + k mod p for the k-th forward), backwards through the chunks in reverse; rank r warms up with
        /// (p-r-1)*2 + (v-1)*p forwards, then alternates, then drains. m must be a multiple of p.
        /// </summary>
        public static ScheduleTable Interleaved1F1B(int stageCount, int stagesPerRank, int microbatches)
        {
            int v = stagesPerRank, p = stageCount / v, total = microbatches * v;
            var ranks = new List<PipelineAction>[p];
            for (int r = 0; r < p; r++)
            {
                PipelineAction Forward(int k) => new((k / p % v) * p + r, ActionKind.Forward, k / (p * v) * p + k % p);
                PipelineAction Backward(int k) => new((v - 1 - k / p % v) * p + r, ActionKind.Backward, k / (p * v) * p + k % p);
                int warmup = microbatches == p ? total : System.Math.Min(total, (p - r - 1) * 2 + (v - 1) * p);
                var actions = new List<PipelineAction>();
                int f = 0, b = 0;
                for (; f < warmup; f++) actions.Add(Forward(f));
                while (f < total)
                {
                    actions.Add(Forward(f++));
                    actions.Add(Backward(b++));
                }
                while (b < total) actions.Add(Backward(b++));
                ranks[r] = actions;
            }
            return new ScheduleTable(ScheduleKind.Interleaved1F1B, stageCount, microbatches, ranks);
        }

        /// <summary>Looped BFS: each local stage forwards every microbatch in turn, then the backwards run from the last local stage back.</summary>
        public static ScheduleTable LoopedBfs(int stageCount, int stagesPerRank, int microbatches)
        {
            int v = stagesPerRank, p = stageCount / v;
            var ranks = new List<PipelineAction>[p];
            for (int r = 0; r < p; r++)
            {
                var local = Enumerable.Range(0, v).Select(c => c * p + r).ToArray();
                var actions = new List<PipelineAction>();
                foreach (int stage in local)
                    actions.AddRange(Enumerable.Range(0, microbatches).Select(mb => new PipelineAction(stage, ActionKind.Forward, mb)));
                foreach (int stage in local.Reverse())
                    actions.AddRange(Enumerable.Range(0, microbatches).Reverse().Select(mb => new PipelineAction(stage, ActionKind.Backward, mb)));
                ranks[r] = actions;
            }
            return new ScheduleTable(ScheduleKind.LoopedBFS, stageCount, microbatches, ranks);
        }
    }
}
