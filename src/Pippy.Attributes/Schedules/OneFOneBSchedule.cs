using System.Collections.Generic;

namespace Pippy.Schedules
{
    /// <summary>
    /// 1F1B: rank r runs p-1-r warm-up forwards, then alternates one forward and one backward, then runs the remaining
    /// backwards. Its bubble equals GPipe's, but it holds at most p-r microbatches' activations instead of m.
    /// </summary>
    public static class OneFOneBSchedule
    {
        public static ScheduleTable ComputeOnly(int stageCount, int microbatches)
        {
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
            return new ScheduleTable(ScheduleKind.OneFOneB, stageCount, microbatches, ranks);
        }
    }
}
