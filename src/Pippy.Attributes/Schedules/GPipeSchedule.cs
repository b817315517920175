using System.Collections.Generic;
using System.Linq;

namespace Pippy.Schedules
{
    /// <summary>
    /// GPipe (fill-drain): every rank runs the forward of all microbatches, then their backwards in reverse order,
    /// so the last microbatch's activations, the freshest, are released first. One stage per rank; any microbatch count.
    /// </summary>
    public sealed class GPipeSchedule : ScheduleDefinition
    {
        public override ScheduleKind Kind => ScheduleKind.GPipe;
        public override string Description => "Fill-drain: all forwards of every microbatch, then all backwards in reverse order, one stage per rank.";
        public override StageLayout Layout => StageLayout.OneStagePerRank;

        /// <summary>Compute actions only (F and B), one stage per rank.</summary>
        public override ScheduleTable ComputeOnly(StageLinks links, int microbatches)
        {
            int stageCount = links.StageCount;
            var ranks = new List<PipelineAction>[stageCount];
            for (int stage = 0; stage < stageCount; stage++)
            {
                var actions = new List<PipelineAction>(2 * microbatches);
                actions.AddRange(Enumerable.Range(0, microbatches).Select(mb => new PipelineAction(stage, ActionKind.Forward, mb)));
                actions.AddRange(Enumerable.Range(0, microbatches).Reverse().Select(mb => new PipelineAction(stage, ActionKind.Backward, mb)));
                ranks[stage] = actions;
            }
            return new ScheduleTable(Kind, stageCount, microbatches, ranks);
        }
    }
}
