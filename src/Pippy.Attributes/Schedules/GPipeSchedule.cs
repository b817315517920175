using System.Collections.Generic;
using System.Linq;

namespace Pippy.Schedules
{
    /// <summary>
    /// GPipe (fill-drain): every rank runs the forward of all microbatches, then their backwards in reverse order,
    /// so the last microbatch's activations, the freshest, are released first.
    /// </summary>
    public static class GPipeSchedule
    {
        /// <summary>Compute actions only (F and B), one stage per rank.</summary>
        public static ScheduleTable ComputeOnly(int stageCount, int microbatches)
        {
            var ranks = new List<PipelineAction>[stageCount];
            for (int stage = 0; stage < stageCount; stage++)
            {
                var actions = new List<PipelineAction>(2 * microbatches);
                actions.AddRange(Enumerable.Range(0, microbatches).Select(mb => new PipelineAction(stage, ActionKind.Forward, mb)));
                actions.AddRange(Enumerable.Range(0, microbatches).Reverse().Select(mb => new PipelineAction(stage, ActionKind.Backward, mb)));
                ranks[stage] = actions;
            }
            return new ScheduleTable(ScheduleKind.GPipe, stageCount, microbatches, ranks);
        }
    }
}
