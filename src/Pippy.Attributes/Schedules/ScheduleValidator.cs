using System.Collections.Generic;
using System.Linq;

namespace Pippy.Schedules
{
    /// <summary>
    /// Structural checks of a lowered training table: every action on the rank that holds its stage, every
    /// microbatch forwarded once and backwarded once (a B, or an I and a W) per stage, a stage's forward of a
    /// microbatch before its backward and its I before its W, and sends and receives where (and only where) a stage has a neighbour on another rank.
    /// Ordering between ranks (deadlock) is the <see cref="ScheduleSimulator"/>'s job.
    /// </summary>
    public static class ScheduleValidator
    {
        public static IReadOnlyList<string> Validate(ScheduleTable table, StageLinks links)
        {
            var errors = new List<string>();
            if (table.Microbatches < 1) errors.Add($"the microbatch count is {table.Microbatches}; it must be at least 1");
            if (table.RankCount != links.RankCount) errors.Add($"the table has {table.RankCount} ranks but the stages are placed on {links.RankCount}");
            if (errors.Count > 0) return errors;

            var counts = new Dictionary<PipelineAction, int>();
            for (int rank = 0; rank < table.RankCount; rank++)
            {
                var done = new HashSet<PipelineAction>();
                var actions = table.ActionsOf(rank);
                for (int i = 0; i < actions.Count; i++)
                {
                    var a = actions[i];
                    string where = $"rank {rank} action {i} ({a})";
                    if (a.Stage < 0 || a.Stage >= table.StageCount) { errors.Add($"{where}: stage {a.Stage} does not exist"); continue; }
                    if (a.Microbatch < 0 || a.Microbatch >= table.Microbatches) { errors.Add($"{where}: microbatch {a.Microbatch} does not exist"); continue; }
                    if (links.RankOf(a.Stage) != rank) errors.Add($"{where}: stage {a.Stage} runs on rank {links.RankOf(a.Stage)}, not here");
                    bool needsSend = a.Kind == ActionKind.SendForward ? links.SendsToOtherRank(a.Stage)
                        : a.Kind == ActionKind.ReceiveBackward ? links.SendsToOtherRank(a.Stage)
                        : a.Kind == ActionKind.ReceiveForward || a.Kind == ActionKind.SendBackward ? links.ReceivesFromOtherRank(a.Stage)
                        : true;
                    if (!needsSend) errors.Add($"{where}: stage {a.Stage} has no neighbour on another rank for this message");
                    if ((a.Kind == ActionKind.Backward || a.Kind == ActionKind.BackwardInput) && !done.Contains(new PipelineAction(a.Stage, ActionKind.Forward, a.Microbatch)))
                        errors.Add($"{where}: backward before the forward {new PipelineAction(a.Stage, ActionKind.Forward, a.Microbatch)} on this rank");
                    if (a.Kind == ActionKind.BackwardWeight && !done.Contains(new PipelineAction(a.Stage, ActionKind.BackwardInput, a.Microbatch)))
                        errors.Add($"{where}: weight gradient before the input gradient {new PipelineAction(a.Stage, ActionKind.BackwardInput, a.Microbatch)} on this rank");
                    done.Add(a);
                    counts[a] = counts.TryGetValue(a, out int c) ? c + 1 : 1;
                }
            }

            int Count(int stage, ActionKind kind, int mb) => counts.TryGetValue(new PipelineAction(stage, kind, mb), out int n) ? n : 0;
            for (int stage = 0; stage < table.StageCount; stage++)
            {
                var wrong = Enumerable.Range(0, table.Microbatches)
                    .Where(mb => Count(stage, ActionKind.Forward, mb) != 1)
                    .Select(mb => $"{new PipelineAction(stage, ActionKind.Forward, mb)} x{Count(stage, ActionKind.Forward, mb)}")
                    .ToArray();
                if (wrong.Length > 0)
                    errors.Add($"stage {stage}: every microbatch needs exactly one F, but: {string.Join(", ", wrong)}");
                // A microbatch's backward is one B, or one I and one W.
                wrong = Enumerable.Range(0, table.Microbatches)
                    .Where(mb => !(Count(stage, ActionKind.Backward, mb) == 1 && Count(stage, ActionKind.BackwardInput, mb) == 0 && Count(stage, ActionKind.BackwardWeight, mb) == 0)
                              && !(Count(stage, ActionKind.Backward, mb) == 0 && Count(stage, ActionKind.BackwardInput, mb) == 1 && Count(stage, ActionKind.BackwardWeight, mb) == 1))
                    .Select(mb => $"microbatch {mb} (B x{Count(stage, ActionKind.Backward, mb)}, I x{Count(stage, ActionKind.BackwardInput, mb)}, W x{Count(stage, ActionKind.BackwardWeight, mb)})")
                    .ToArray();
                if (wrong.Length > 0)
                    errors.Add($"stage {stage}: every microbatch needs exactly one B, or one I and one W, but: {string.Join(", ", wrong)}");
            }
            return errors;
        }
    }
}
