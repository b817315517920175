using System;
using System.Collections.Generic;
using System.Linq;

namespace Pippy.Schedules
{
    /// <summary>
    /// Custom schedules as CSV, in torch.distributed.pipelining's format: one row per rank, one action per cell
    /// (<c>0F0,0F1,,0B0</c>; empty cells are idle slots). A table of compute actions only is lowered here; a table
    /// that already has sends and receives is taken as written. Either way it is validated and simulated, and every
    /// problem names the cell. As the definition of <see cref="ScheduleKind.Custom"/> it computes nothing: the CSV
    /// places the stages (the row that runs a stage's actions), and <see cref="ScheduleBuilder"/> refuses to compute it.
    /// </summary>
    public sealed class CsvSchedule : ScheduleDefinition
    {
        private const string NotComputed = "a Custom schedule is read from its CSV file ([Pipeline(ScheduleFile = ...)]), not computed";

        public override ScheduleKind Kind => ScheduleKind.Custom;
        public override string Description => "A table of your own, read from a CSV file in torch.distributed.pipelining's format ([Pipeline(ScheduleFile = ...)]).";
        public override StageLayout Layout => StageLayout.FromTable;
        public override bool IsComputed => false;

        /// <summary>Always refused: a custom table is loaded with <see cref="Load"/>, not computed from counts.</summary>
        public override IReadOnlyList<string> CheckPlacement(int stageCount, int stagesPerRank) => new List<string> { NotComputed };

        public override ScheduleTable ComputeOnly(StageLinks links, int microbatches) => throw new InvalidScheduleException(NotComputed);

        /// <summary>Parses, lowers if needed, validates and simulates; throws <see cref="InvalidScheduleException"/> naming the cell.</summary>
        public static ScheduleTable Load(string csv, string fileName, IReadOnlyList<(int From, int To)> edges, int stageCount)
        {
            var rows = csv.Replace("\r\n", "\n").Split('\n').Select(l => l.TrimEnd()).ToList();
            while (rows.Count > 0 && rows[rows.Count - 1].Length == 0) rows.RemoveAt(rows.Count - 1);
            if (rows.Count == 0) throw new InvalidScheduleException($"{fileName} is empty: it needs one row of actions per rank");
            var cells = new List<List<(PipelineAction Action, int Column)>>();
            for (int r = 0; r < rows.Count; r++)
            {
                var row = new List<(PipelineAction, int)>();
                var texts = rows[r].Split(',');
                for (int c = 0; c < texts.Length; c++)
                {
                    string text = texts[c].Trim().Trim('"');
                    if (text.Length == 0 || text == "None") continue;
                    if (!PipelineAction.TryParse(text, out var action))
                        throw new InvalidScheduleException($"{fileName} row {r + 1}, column {c + 1}: '{text}' is not an action (write stage, kind, microbatch: 2F0, 1B3, 0I1, 0W1, 1SEND_F0)");
                    if (action.Stage >= stageCount)
                        throw new InvalidScheduleException($"{fileName} row {r + 1}, column {c + 1}: '{text}' names stage {action.Stage}, but the model has {stageCount} stages (0 to {stageCount - 1})");
                    row.Add((action, c + 1));
                }
                cells.Add(row);
            }

            int microbatches = cells.SelectMany(r => r).Select(a => a.Action.Microbatch).DefaultIfEmpty(-1).Max() + 1;
            var table = new ScheduleTable(ScheduleKind.Custom, stageCount, microbatches, cells.Select(r => r.Select(a => a.Action)));
            var placement = table.RankOfStage();
            int missing = Array.IndexOf(placement.ToArray(), -1);
            if (missing >= 0) throw new InvalidScheduleException($"{fileName}: no row runs stage {missing}; every stage needs its actions on one rank");
            for (int r = 0; r < cells.Count; r++)
                foreach (var (action, column) in cells[r])
                    if (placement[action.Stage] != r)
                        throw new InvalidScheduleException($"{fileName} row {r + 1}, column {column}: '{action}' runs stage {action.Stage}, which row {placement[action.Stage] + 1} runs; a stage belongs to one rank");

            var links = new StageLinks(stageCount, edges, placement);
            bool lowered = cells.SelectMany(r => r).Any(a => !a.Action.IsCompute);
            var result = lowered ? table : ScheduleLowering.AddCommunication(table, links);
            var errors = ScheduleValidator.Validate(result, links);
            if (errors.Count > 0) throw new InvalidScheduleException($"{fileName}: {string.Join("; ", errors.Take(5))}");
            var simulation = ScheduleSimulator.Run(result, links);
            if (!simulation.Completed)
                throw new InvalidScheduleException($"{fileName} would hang: {NameCells(simulation.Deadlock!, cells)}");
            return result;
        }

        /// <summary>
        /// Adds to each action a deadlock report names the CSV cell it comes from: its own, or for a send or receive
        /// that lowering added, the cell of the forward or backward it serves.
        /// </summary>
        private static string NameCells(string report, List<List<(PipelineAction Action, int Column)>> cells)
        {
            var where = new Dictionary<PipelineAction, string>();
            for (int r = 0; r < cells.Count; r++)
                foreach (var (action, column) in cells[r])
                    where[action] = $"CSV row {r + 1} column {column}";
            string Cell(PipelineAction action)
            {
                var kinds = action.Kind switch
                {
                    ActionKind.SendForward or ActionKind.ReceiveForward => new[] { ActionKind.Forward },
                    ActionKind.SendBackward or ActionKind.ReceiveBackward => new[] { ActionKind.Backward, ActionKind.BackwardInput },
                    _ => new[] { action.Kind },
                };
                foreach (var kind in kinds)
                    if (where.TryGetValue(new PipelineAction(action.Stage, kind, action.Microbatch), out var cell)) return cell;
                return "";
            }
            return System.Text.RegularExpressions.Regex.Replace(report, @"\((\w+)\)", match =>
                PipelineAction.TryParse(match.Groups[1].Value, out var action) && Cell(action) is { Length: > 0 } cell
                    ? $"({match.Groups[1].Value}, for {cell})"
                    : match.Value);
        }

        /// <summary>The CSV of a table: one row per rank.</summary>
        public static string Write(ScheduleTable table) =>
            string.Join("\n", Enumerable.Range(0, table.RankCount).Select(r => string.Join(",", table.ActionsOf(r)))) + "\n";
    }
}
