using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;

namespace Pippy.Schedules
{
    /// <summary>Pictures of a schedule: a text grid (ranks x time), an SVG timeline and a Chrome-trace / Perfetto JSON.</summary>
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
            /// <summary>
        /// An SVG timeline: a track per rank, a box per action, coloured by kind (forward blue, backward orange,
        /// input and weight gradients lighter, sends grey, receives red: a receive's box is its wait), with a time axis
        /// in <paramref name="unit"/>. For simulated timelines and for measured ones (a trace written by the runtime).
        /// </summary>
        public static string Svg(IReadOnlyList<TimedAction> timeline, string title, string unit = "ms")
        {
            const int left = 70, right = 20, top = 40, track = 34, width = 1100;
            int ranks = timeline.Count == 0 ? 1 : timeline.Max(t => t.Rank) + 1;
            double start = timeline.Count == 0 ? 0 : timeline.Min(t => t.Start);
            double end = timeline.Count == 0 ? 1 : Math.Max(timeline.Max(t => t.End), start + 1e-9);
            double scale = (width - left - right) / (end - start);
            int height = top + ranks * track + 40;
            string F(double value) => value.ToString("0.##", CultureInfo.InvariantCulture);
            var svg = new StringBuilder();
            svg.Append("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"").Append(width).Append("\" height=\"").Append(height)
               .Append("\" font-family=\"sans-serif\" font-size=\"11\">\n");
            svg.Append("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
            svg.Append("<text x=\"").Append(left).Append("\" y=\"20\" font-size=\"14\">").Append(Escape(title)).Append("</text>\n");
            for (int rank = 0; rank < ranks; rank++)
                svg.Append("<text x=\"8\" y=\"").Append(top + rank * track + 21).Append("\">rank ").Append(rank).Append("</text>\n");
            foreach (var t in timeline)
            {
                double x = left + (t.Start - start) * scale, w = Math.Max(0.5, (t.End - t.Start) * scale);
                int y = top + t.Rank * track + 4;
                svg.Append("<rect x=\"").Append(F(x)).Append("\" y=\"").Append(y).Append("\" width=\"").Append(F(w)).Append("\" height=\"").Append(track - 8)
                   .Append("\" fill=\"").Append(Colour(t.Action.Kind)).Append("\" stroke=\"white\" stroke-width=\"0.5\"><title>")
                   .Append(Escape($"{t.Action}: {F(t.Start)}-{F(t.End)} {unit}")).Append("</title></rect>\n");
                if (w > 18 && t.Action.IsCompute)
                    svg.Append("<text x=\"").Append(F(x + 2)).Append("\" y=\"").Append(y + track / 2).Append("\" fill=\"white\">")
                       .Append(PipelineAction.KindCode(t.Action.Kind)).Append(t.Action.Microbatch).Append("</text>\n");
            }
            int axis = top + ranks * track + 14;
            for (int i = 0; i <= 10; i++)
            {
                double at = start + (end - start) * i / 10;
                double x = left + (at - start) * scale;
                svg.Append("<line x1=\"").Append(F(x)).Append("\" y1=\"").Append(axis - 8).Append("\" x2=\"").Append(F(x)).Append("\" y2=\"").Append(axis - 4).Append("\" stroke=\"black\"/>");
                svg.Append("<text x=\"").Append(F(x)).Append("\" y=\"").Append(axis + 8).Append("\" text-anchor=\"middle\">").Append(F(at - start)).Append("</text>\n");
            }
            svg.Append("<text x=\"").Append(width - right).Append("\" y=\"").Append(axis + 22).Append("\" text-anchor=\"end\">").Append(unit).Append("</text>\n");
            return svg.Append("</svg>\n").ToString();
        }

        private static string Colour(ActionKind kind) => kind switch
        {
            ActionKind.Forward => "#4c78a8",
            ActionKind.Backward => "#f58518",
            ActionKind.BackwardInput => "#f5a05a",
            ActionKind.BackwardWeight => "#c26b0e",
            ActionKind.SendForward or ActionKind.SendBackward => "#9d9d9d",
            _ => "#e45756",
        };

        private static string Escape(string text) => text.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&quot;");
    }
}