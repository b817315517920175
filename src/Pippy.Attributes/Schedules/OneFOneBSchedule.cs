using System.Collections.Generic;

namespace Pippy.Schedules
{
    /// <summary>
    /// 1F1B: rank r runs p-1-r warm-up forwards, then alternates one forward and one backward, then runs the remaining
    /// backwards. Its bubble equals GPipe's, but it holds at most p-r microbatches' activations instead of m.
    /// One stage per rank; at least as many microbatches as ranks.
    /// </summary>
    public sealed class OneFOneBSchedule : ScheduleDefinition
    {
        public override ScheduleKind Kind => ScheduleKind.OneFOneB;
        public override string Description => "One forward, one backward: after a warm-up each rank alternates, holding at most p - r microbatches, one stage per rank.";
        public override StageLayout Layout => StageLayout.OneStagePerRank;

        protected override string? CheckMicrobatches(int ranks, int microbatches) =>
            microbatches < ranks
                ? $"1F1B needs at least as many microbatches as ranks ({ranks}), but Microbatches = {microbatches}; use more microbatches or GPipe"
                : null;

        public override ScheduleTable ComputeOnly(StageLinks links, int microbatches)
        {
            int stageCount = links.StageCount;
            var ranks = new List<PipelineAction>[stageCount];
            for (int stage = 0; stage < stageCount; stage++)
            {
                var actions = new List<PipelineAction>();
                int warmup = System.Math.Min(stageCount - 1 - stage, microbatches);
                int forward = 0, backward = 0;
                for (; forward < warmup; forward++) actions.Add(new PipelineAction(stage, ActionKind.Forward, forward));
                while (forward < microbatches)
                {
                    actions.Add(new PipelineAction(stage, ActionKind.Forward, forward++));
                    actions.Add(new PipelineAction(stage, ActionKind.Backward, backward++));
                }
                while (backward < microbatches) actions.Add(new PipelineAction(stage, ActionKind.Backward, backward++));
                ranks[stage] = actions;
            }
            return new ScheduleTable(Kind, stageCount, microbatches, ranks);
        }
    }
}
