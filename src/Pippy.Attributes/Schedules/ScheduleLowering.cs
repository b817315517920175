using System.Collections.Generic;

namespace Pippy.Schedules
{
    /// <summary>
    /// Turns a compute-only table into one with sends and receives. A receive goes right before the compute that
    /// needs it and a send right after the compute that made its data; sends are non-blocking, so this order cannot
    /// make two ranks wait on each other (the simulator checks it). Stages on the same rank hand values over in
    /// memory and get no communication action for that edge. An input-gradient action I sends and receives like a full
    /// backward; a weight-gradient action W exchanges nothing.
    /// </summary>
    public static class ScheduleLowering
    {
        public static ScheduleTable AddCommunication(ScheduleTable computeOnly, StageLinks links)
        {
            var ranks = new List<List<PipelineAction>>();
            for (int rank = 0; rank < computeOnly.RankCount; rank++)
            {
                var lowered = new List<PipelineAction>();
                foreach (var action in computeOnly.ActionsOf(rank))
                {
                    int stage = action.Stage, mb = action.Microbatch;
                    switch (action.Kind)
                    {
                        case ActionKind.Forward:
                            if (links.ReceivesFromOtherRank(stage)) lowered.Add(new PipelineAction(stage, ActionKind.ReceiveForward, mb));
                            lowered.Add(action);
                            if (links.SendsToOtherRank(stage)) lowered.Add(new PipelineAction(stage, ActionKind.SendForward, mb));
                            break;
                        case ActionKind.Backward:
                        case ActionKind.BackwardInput:
                            if (links.SendsToOtherRank(stage)) lowered.Add(new PipelineAction(stage, ActionKind.ReceiveBackward, mb));
                            lowered.Add(action);
                            if (links.ReceivesFromOtherRank(stage)) lowered.Add(new PipelineAction(stage, ActionKind.SendBackward, mb));
                            break;
                        default:
                            lowered.Add(action);
                            break;
                    }
                }
                ranks.Add(lowered);
            }
            return new ScheduleTable(computeOnly.Kind, computeOnly.StageCount, computeOnly.Microbatches, ranks);
        }
    }
}
