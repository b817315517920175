using System.Collections.Generic;
using System.Linq;

namespace Pippy.Schedules
{
    /// <summary>
    /// Looped BFS (breadth-first) over v stages per rank placed in a loop (stage c*p + r on rank r): each local stage
    /// forwards every microbatch in turn, then the backwards run from the last local stage back. Any microbatch count.
    /// </summary>
    public sealed class LoopedBfsSchedule : ScheduleDefinition
    {
        public override ScheduleKind Kind => ScheduleKind.LoopedBFS;
        public override string Description => "Breadth-first over the looped stages: all microbatches through each local stage before the next, backwards in reverse.";
        public override StageLayout Layout => StageLayout.Looped;

        public override ScheduleTable ComputeOnly(StageLinks links, int microbatches)
        {
            int stageCount = links.StageCount, v = stageCount / links.RankCount, p = stageCount / v;
            var ranks = new List<PipelineAction>[p];
            for (int r = 0; r < p; r++)
            {
                var local = Enumerable.Range(0, v).Select(c => c * p + r).ToArray();
                var actions = new List<PipelineAction>();
                foreach (int stage in local)
                    actions.AddRange(Enumerable.Range(0, microbatches).Select(mb => new PipelineAction(stage, ActionKind.Forward, mb)));
                foreach (int stage in Enumerable.Reverse(local))
                    actions.AddRange(Enumerable.Range(0, microbatches).Reverse().Select(mb => new PipelineAction(stage, ActionKind.Backward, mb)));
                ranks[r] = actions;
            }
            return new ScheduleTable(Kind, stageCount, microbatches, ranks);
        }
    }
}
