using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using Pippy.Runtime.Communication;
using Pippy.Schedules;

namespace Pippy.Runtime.Runner
{
    /// <summary>
    /// Chrome-trace files of the measured actions (open them in ui.perfetto.dev or chrome://tracing), each written
    /// atomically (temporary file, then rename): one per rank, or the whole job's in one file on rank 0.
    /// </summary>
    internal static class TraceFiles
    {
        /// <summary>This rank's timeline as pippy-trace-rank{rank}.json in <paramref name="directory"/>.</summary>
        public static void WriteRank(string directory, int rank, IReadOnlyList<TimedAction> timeline)
        {
            Directory.CreateDirectory(directory);
            WriteAtomically(Path.Combine(directory, $"pippy-trace-rank{rank}.json"), ScheduleDiagram.ChromeTrace(timeline, unitMicroseconds: 1000));
        }

        /// <summary>
        /// Every rank's last step in one file: a track per rank. Every rank calls it; rank 0 gathers the timelines and
        /// writes <paramref name="path"/>. Ranks on one machine share the monotonic clock, so their tracks line up
        /// (ranks on other machines are aligned to their own start).
        /// </summary>
        public static void WriteJob(MpiCommunicator world, StepStatistics last, string path)
        {
            var mine = Encoding.UTF8.GetBytes(string.Join("\n", last.Timeline.Select(t =>
                FormattableString.Invariant($"{t.Action}\t{t.Start:R}\t{t.End:R}")).Prepend(FormattableString.Invariant($"start\t{last.StartTimestamp}\t{System.Net.Dns.GetHostName()}"))));
            int size = world.Size;
            var lengths = new int[size];
            var offsets = new int[size];
            world.Gather<int>(new[] { mine.Length }, lengths, 0, "the gather of the trace sizes of WriteTrace");
            for (int r = 1; r < size; r++) offsets[r] = offsets[r - 1] + lengths[r - 1];
            var all = new byte[Math.Max(1, offsets[size - 1] + lengths[size - 1])];
            world.Gatherv<byte>(mine, all, lengths, offsets, 0, "the gather of the traces of WriteTrace");
            if (world.Rank != 0) return;
            var timeline = new List<TimedAction>();
            var texts = Enumerable.Range(0, size).Select(r => Encoding.UTF8.GetString(all, offsets[r], lengths[r]).Split('\n', StringSplitOptions.RemoveEmptyEntries)).ToArray();
            var starts = texts.Select(lines => lines[0].Split('\t')).Select(p => (Ticks: long.Parse(p[1], CultureInfo.InvariantCulture), Host: p[2])).ToArray();
            for (int r = 0; r < size; r++)
            {
                long earliest = starts.Where(s => s.Host == starts[r].Host).Min(s => s.Ticks);
                double offset = (starts[r].Ticks - earliest) * 1000.0 / System.Diagnostics.Stopwatch.Frequency;
                foreach (var line in texts[r].Skip(1))
                {
                    var parts = line.Split('\t');
                    timeline.Add(new TimedAction(r, PipelineAction.Parse(parts[0]),
                        offset + double.Parse(parts[1], CultureInfo.InvariantCulture), offset + double.Parse(parts[2], CultureInfo.InvariantCulture)));
                }
            }
            string? folder = Path.GetDirectoryName(Path.GetFullPath(path));
            if (folder is not null) Directory.CreateDirectory(folder);
            WriteAtomically(path, ScheduleDiagram.ChromeTrace(timeline, unitMicroseconds: 1000));
        }

        private static void WriteAtomically(string path, string text)
        {
            File.WriteAllText(path + ".tmp", text);
            File.Move(path + ".tmp", path, overwrite: true);
        }
    }
}
