using System;
using System.Globalization;
using System.IO;
using System.Linq;
using Pippy.Schedules;

// dotnet run --project tools/ScheduleViewer -- <schedule> <ranks> <microbatches> [stages per rank] [--costs F,B,I,W] [--trace file.json] [--csv file.csv] [--svg file.svg]
// e.g. dotnet run --project tools/ScheduleViewer -- OneFOneB 4 8
// dotnet run --project tools/ScheduleViewer -- --render trace.json picture.svg   (a trace written by a real run, e.g. samples/Gpt --trace)
if (args.Length >= 3 && args[0] == "--render")
{
    using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(args[1]));
    var measured = json.RootElement.GetProperty("traceEvents").EnumerateArray()
        .Select(e => new TimedAction(e.GetProperty("tid").GetInt32(), PipelineAction.Parse(e.GetProperty("name").GetString()!),
            e.GetProperty("ts").GetDouble() / 1000, (e.GetProperty("ts").GetDouble() + e.GetProperty("dur").GetDouble()) / 1000))
        .ToList();
    File.WriteAllText(args[2], ScheduleDiagram.Svg(measured, args.Length > 3 ? args[3] : $"measured: {Path.GetFileName(args[1])}"));
    Console.WriteLine($"{measured.Count} actions of {measured.Select(t => t.Rank).Distinct().Count()} ranks drawn in {args[2]}");
    return 0;
}
if (args.Length < 3 || !Enum.TryParse(args[0], ignoreCase: true, out ScheduleKind kind)
    || !int.TryParse(args[1], out int ranks) || !int.TryParse(args[2], out int microbatches))
{
    Console.Error.WriteLine($"usage: ScheduleViewer <{string.Join("|", Enum.GetNames<ScheduleKind>().Where(n => n != nameof(ScheduleKind.Custom)))}> <ranks> <microbatches> [stages per rank] [--costs F,B,I,W] [--trace file.json] [--csv file.csv]");
    return 2;
}
int stagesPerRank = args.Length > 3 && int.TryParse(args[3], out int v) ? v : SchedulePlacement.IsV(kind) ? 2 : 1;
string? Option(string name) => Array.IndexOf(args, name) is int i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
var costs = new ScheduleCosts();
if (Option("--costs") is { } given)
{
    var c = given.Split(',').Select(x => double.Parse(x, CultureInfo.InvariantCulture)).ToArray();
    costs = new ScheduleCosts { Forward = c[0], Backward = c[1], BackwardInput = c[2], BackwardWeight = c[3] };
}

try
{
    int stages = ranks * stagesPerRank;
    var links = ScheduleBuilder.Links(kind, stages, stagesPerRank, Enumerable.Range(0, stages - 1).Select(s => (s, s + 1)));
    var table = ScheduleBuilder.Build(kind, links, microbatches);
    var metrics = ScheduleSimulator.Measure(table, links, costs);
    Console.WriteLine($"{kind}: {ranks} ranks x {stagesPerRank} stage(s), {microbatches} microbatches; costs F={costs.Forward} B={costs.Backward} I={costs.BackwardInput} W={costs.BackwardWeight}");
    Console.WriteLine();
    Console.Write(ScheduleDiagram.TextGrid(metrics, ranks));
    Console.WriteLine();
    Console.WriteLine("table (torch.distributed.pipelining notation):");
    foreach (var line in table.Format()) Console.WriteLine("  " + line);
    if (Option("--trace") is { } trace) File.WriteAllText(trace, ScheduleDiagram.ChromeTrace(metrics.Timeline));
    if (Option("--csv") is { } csv) File.WriteAllText(csv, CsvSchedule.Write(table));
    if (Option("--svg") is { } picture) File.WriteAllText(picture, ScheduleDiagram.Svg(metrics.Timeline, $"{kind}: {ranks} ranks, {microbatches} microbatches (simulated, B = {costs.Backward} F)", unit: "F"));
    return 0;
}
catch (InvalidScheduleException e)
{
    Console.Error.WriteLine($"invalid: {e.Message}");
    return 1;
}
