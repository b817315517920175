using System.Collections.Generic;
using System.Linq;

namespace Pippy.Schedules
{
    /// <summary>
    /// Structural checks of a lowered training table: every action on the rank that holds its stage, every
    /// microbatch forwarded and backwarded exactly once per stage, a stage's forward of a microbatch before its
    /// backward, and sends and receives where (and only where) a stage has a neighbour on another rank.
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
                    if (a.Kind == ActionKind.Backward && !done.Contains(new PipelineAction(a.Stage, ActionKind.Forward, a.Microbatch)))
                        errors.Add($"{where}: backward before the forward {new PipelineAction(a.Stage, ActionKind.Forward, a.Microbatch)} on this rank");
                    done.Add(a);
                    counts[a] = counts.TryGetValue(a, out int c) ? c + 1 : 1;
                }
            }

            for (int stage = 0; stage < table.StageCount; stage++)
            {
                foreach (var kind in new[] { ActionKind.Forward, ActionKind.Backward })
                {
                    var wrong = Enumerable.Range(0, table.Microbatches)
                        .Select(mb => new PipelineAction(stage, kind, mb))
                        .Where(a => !counts.TryGetValue(a, out int n) || n != 1)
                        .Select(a => $"{a} x{(counts.TryGetValue(a, out int n) ? n : 0)}")
                        .ToArray();
                    if (wrong.Length > 0)
                        errors.Add($"stage {stage}: every microbatch needs exactly one {PipelineAction.KindCode(kind)}, but: {string.Join(", ", wrong)}");
                }
            }
            return errors;
        }
    }
}
