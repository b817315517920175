using System.Globalization;
using System.Linq;
using System.Text.RegularExpressions;

namespace Pippy.Tests.Runtime;

/// <summary>
/// The "PATHS" lines that tests/ParityApp's grid prints with GRID_PRINT_PATHS=1: per rank and cell, on which host the
/// rank ran and which path its tensor messages of the cell's last Step took (StepStatistics.MessagesViaSharedMemory,
/// MessagesViaMpi and their bytes).
/// </summary>
public sealed record MessagePathLines(int Rank, string Host, int ViaSharedMemory, long BytesViaSharedMemory, int ViaMpi, long BytesViaMpi)
{
    private static readonly Regex Line = new(
        @"^PATHS rank (\d+) on (\S+): (\d+) messages \((\d+) bytes\) through shared memory, (\d+) \((\d+) bytes\) through MPI$", RegexOptions.Multiline);

    public static MessagePathLines[] In(string output) => Line.Matches(output)
        .Select(m => new MessagePathLines(Int(m, 1), m.Groups[2].Value, Int(m, 3), long.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture), Int(m, 5),
            long.Parse(m.Groups[6].Value, CultureInfo.InvariantCulture)))
        .ToArray();

    private static int Int(Match m, int group) => int.Parse(m.Groups[group].Value, CultureInfo.InvariantCulture);
}
