using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;

namespace Pippy.Schedules
{
    /// <summary>Pictures of a schedule: a text grid (ranks x time) and a Chrome-trace / Perfetto JSON.</summary>
    public static class ScheduleDiagram
    {
        /// <summary>
        /// One line per rank, one column per unit of time of a simulated run, compute actions only: <c>F3</c> is a
        /// forward of microbatch 3 (with the stage when a rank has several: <c>2F3</c>), <c>.</c> is idle time, the
        /// bubbles. Each cell is <paramref name="cellWidth"/> characters wide.
        /// </summary>
        public static string TextGrid(ScheduleMetrics metrics, int ranks, int cellWidth = 4)
        {
            var compute = metrics.Timeline.Where(t => t.Action.IsCompute).ToList();
            double unit = compute.Where(t => t.End > t.Start).Select(t => t.End - t.Start).DefaultIfEmpty(1).Min();
            int columns = (int)Math.Ceiling(metrics.Makespan / unit - 1e-9);
            var multiStage = compute.GroupBy(t => t.Rank).ToDictionary(g => g.Key, g => g.Select(t => t.Action.Stage).Distinct().Count() > 1);
            var text = new StringBuilder();
            for (int rank = 0; rank < ranks; rank++)
            {
                var cells = Enumerable.Repeat(".".PadRight(cellWidth), columns).ToArray();
                foreach (var t in compute.Where(t => t.Rank == rank))
                {
                    string label = (multiStage.TryGetValue(rank, out bool many) && many ? t.Action.Stage.ToString(CultureInfo.InvariantCulture) : "")
                        + PipelineAction.KindCode(t.Action.Kind) + t.Action.Microbatch.ToString(CultureInfo.InvariantCulture);
                    int from = (int)Math.Round(t.Start / unit), to = (int)Math.Round(t.End / unit);
                    for (int c = from; c < to && c < columns; c++) cells[c] = label.PadRight(cellWidth).Substring(0, cellWidth);
                }
                text.Append("rank ").Append(rank.ToString(CultureInfo.InvariantCulture).PadRight(3)).Append('|').Append(string.Concat(cells).TrimEnd()).Append('\n');
            }
            text.Append("bubble ").Append((metrics.BubbleFraction * 100).ToString("0.0", CultureInfo.InvariantCulture)).Append('%')
                .Append(", peak in-flight microbatches per rank: ").Append(string.Join(", ", metrics.PeakInFlight)).Append('\n');
            return text.ToString();
        }

        /// <summary>
        /// The Chrome trace event format (chrome://tracing, ui.perfetto.dev): one complete event per action, one
        /// thread per rank. Times are in <paramref name="unitMicroseconds"/> per unit of the timeline.
        /// </summary>
        public static string ChromeTrace(IEnumerable<TimedAction> timeline, double unitMicroseconds = 1000)
        {
            var text = new StringBuilder("{\"traceEvents\":[\n");
            bool first = true;
            foreach (var t in timeline.OrderBy(t => t.Rank).ThenBy(t => t.Start))
            {
                if (!first) text.Append(",\n");
                first = false;
                text.Append("{\"name\":\"").Append(t.Action).Append("\",\"cat\":\"").Append(PipelineAction.KindCode(t.Action.Kind))
                    .Append("\",\"ph\":\"X\",\"pid\":0,\"tid\":").Append(t.Rank.ToString(CultureInfo.InvariantCulture))
                    .Append(",\"ts\":").Append((t.Start * unitMicroseconds).ToString("0.###", CultureInfo.InvariantCulture))
                    .Append(",\"dur\":").Append(((t.End - t.Start) * unitMicroseconds).ToString("0.###", CultureInfo.InvariantCulture)).Append('}');
            }
            return text.Append("\n],\"displayTimeUnit\":\"ms\"}\n").ToString();
        }
    }
}
