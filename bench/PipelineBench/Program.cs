using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using PipelineBench;
using Pippy.Runtime;
using Pippy.Runtime.Transport;
using Pippy.Schedules;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using MpiU = MPI.Unsafe;

// bench/run.sh runs:  mpiexec -n 2 dotnet PipelineBench.dll pipeline <results dir>
// The one-process baseline runs on rank 0 inside the job while rank 1 sleeps (not spinning in MPI), before and after
// the pipeline measurements.
const int Batch = 256, Warmup = 2, Repeats = 7;
string mode = args.Length > 0 ? args[0] : "";
string results = args.Length > 1 ? args[1] : Path.Combine("bench", "results");
Directory.CreateDirectory(results);
var x = randn(Batch, Layers.Width);
var y = randn(Batch, Layers.Width);
Func<Tensor, Tensor, Tensor> loss = (o, t) => functional.mse_loss(o, t, Reduction.Sum);

using var mpi = PipelineEnvironment.Start(ref args);
var rows = new List<string>();
var chart = new List<(string Label, double Efficiency)>();
if (mode == "probe-sizes")
{
    if (mpi.Rank == 0)
        foreach (int width in new[] { 256, 384, 512 })
            foreach (int batch in new[] { 1024, 2048, 4096 })
            {
                var layers = Sequential(Enumerable.Range(0, 4).Select(_ => (Module<Tensor, Tensor>)Linear(width, width)).ToArray());
                var bx = randn(batch, width); var by = randn(batch, width);
                var line = new List<string>();
                foreach (int m in new[] { 1, 8, 16 })
                {
                    var t = new List<double>();
                    for (int i = 0; i < 7; i++)
                    {
                        var c = Stopwatch.StartNew(); layers.zero_grad();
                        foreach (var (cx, cy) in bx.tensor_split(m).Zip(by.tensor_split(m))) loss(layers.forward(cx).tanh(), cy).backward();
                        t.Add(c.Elapsed.TotalMilliseconds);
                    }
                    line.Add($"m={m} min {t.Min():F1}");
                }
                Console.WriteLine($"width {width} batch {batch}: {string.Join(", ", line)}");
            }
    mpi.Barrier();
    return 0;
}
if (mode == "probe")
{
    // Where a step's time goes, per rank and action kind (diagnostics for the runtime; not in the report).
    foreach (int m in new[] { 8 })
    {
        torch.manual_seed(0);
        using var pipe = GPipeNet.Pipeline.Build(new GPipeNet(), mpi, new PipelineOptions { Microbatches = m, PrintPlan = false });
        var all = new List<double>();
        for (int i = 0; i < 30; i++) { var c = Stopwatch.StartNew(); foreach (var p in pipe.Parameters()) p.grad?.zero_(); mpi.Barrier(); pipe.Step(x, y, loss); all.Add(c.Elapsed.TotalMilliseconds); }
        Console.WriteLine($"[rank {mpi.Rank}] steps: {string.Join(" ", all.Select(t => t.ToString("F0")))}");
        double ms = all.Order().ElementAt(15);
        var byKind = pipe.LastStep.Timeline.GroupBy(a => a.Action.Kind).Select(g => $"{g.Key} {g.Sum(a => a.End - a.Start):F1}");
        Console.WriteLine($"[rank {mpi.Rank}] GPipe m={m}: step {ms:F1} ms; {string.Join(", ", byKind)}");
        if (mpi.Rank == 0)
        {
            var model = new GPipeNet();
            var whole = new List<double>(); var chunked = new List<double>();
            for (int i = 0; i < 40; i++)
            {
                var c = Stopwatch.StartNew(); model.zero_grad(); loss(model.forward(x), y).backward(); whole.Add(c.Elapsed.TotalMilliseconds);
                c = Stopwatch.StartNew(); model.zero_grad(); foreach (var (cx, cy) in x.tensor_split(m).Zip(y.tensor_split(m))) loss(model.forward(cx), cy).backward(); chunked.Add(c.Elapsed.TotalMilliseconds);
            }
            Console.WriteLine($"[rank 0] one process: whole batch min {whole.Min():F1} median {whole.Order().ElementAt(20):F1} ms, in {m} chunks min {chunked.Min():F1} median {chunked.Order().ElementAt(20):F1} ms");
        }
        mpi.Barrier();
    }
    return 0;
}
double baselineBefore = Baseline(mpi, x, y, loss);
double baseline = baselineBefore;

void Efficiency(string name, Func<PipelineOptions, PipelineRunner<Tensor>> build, int m)
{
    torch.manual_seed(0);
    using var pipe = build(new PipelineOptions { Microbatches = m, PrintPlan = false });
    double ms = Median(() =>
    {
        foreach (var p in pipe.Parameters()) p.grad?.zero_();
        mpi.Barrier();
        pipe.Step(x, y, loss);
    });
    int v = pipe.Schedule.StageCount / pipe.Schedule.RankCount;
    var links = ScheduleBuilder.Links(pipe.Schedule.Kind, pipe.Schedule.StageCount, v, Enumerable.Range(0, pipe.Schedule.StageCount - 1).Select(s => (s, s + 1)));
    var costs = new ScheduleCosts { Forward = 1.0 / v, Backward = 2.0 / v, BackwardInput = 1.0 / v, BackwardWeight = 1.0 / v };
    double makespan = ScheduleSimulator.Measure(pipe.Schedule, links, costs).Makespan;
    double ideal = pipe.Schedule.RankCount * m * 3.0 / makespan;
    double speedup = baseline / ms;
    rows.Add($"| {name} | {m} | {ms:F1} | {speedup:F2} | {ideal:F2} | {speedup / ideal:F2} |");
    chart.Add(($"{name} m={m}", speedup / ideal));
}

foreach (int m in new[] { 4, 8, 16 })
{
    Efficiency("GPipe", o => GPipeNet.Pipeline.Build(new GPipeNet(), mpi, o), m);
    Efficiency("1F1B", o => OneFOneBNet.Pipeline.Build(new OneFOneBNet(), mpi, o), m);
    Efficiency("Interleaved 1F1B (v=2)", o => InterleavedNet.Pipeline.Build(new InterleavedNet(), mpi, o), m);
}
Efficiency("naive model parallel (GPipe, 1 microbatch)", o => GPipeNet.Pipeline.Build(new GPipeNet(), mpi, o), 1);

double baselineAfter = Baseline(mpi, x, y, loss);

// Send path: rank 0 sends a tensor to rank 1 (header + data, as the pipeline does) and waits for a one-byte reply.
var bandwidth = new List<string>();
var transport = new TensorTransport(MpiU.MPI_COMM_WORLD);
foreach (int mib in new[] { 1, 4, 16, 64, 256 })
{
    var data = randn(mib * (1L << 20) / 4);
    double sendMs = Median(() =>
    {
        if (mpi.Rank == 0)
        {
            transport.Send(data, 1, 7);
            transport.WaitForSends();
            transport.Receive(new[] { (1, 8) });
        }
        else
        {
            transport.Receive(new[] { (0, 7) });
            transport.Send(null, 0, 8);
            transport.WaitForSends();
        }
    });
    var copy = empty_like(data);
    double copyMs = Median(() => copy.copy_(data));
    if (mpi.Rank == 0)
        bandwidth.Add($"| {mib} | {sendMs:F2} | {mib / 1024.0 / (sendMs / 1000):F2} | {copyMs:F2} | {mib / 1024.0 / (copyMs / 1000):F2} | {copyMs / sendMs:F2} |");
}

// Runtime overhead: tiny stages, so a step is almost all bookkeeping and messages.
torch.manual_seed(0);
var tinyX = randn(64, 1);
var tinyY = randn(64, 1);
string overhead;
using (var tiny = TinyNet.Pipeline.Build(new TinyNet(), mpi, new PipelineOptions { PrintPlan = false }))
{
    double ms = Median(() => { mpi.Barrier(); tiny.Step(tinyX, tinyY, loss); });
    int actions = tiny.Schedule.ActionsOf(0).Count;
    overhead = $"{ms * 1000 / actions:F1} µs per action ({actions} actions per rank, {ms:F2} ms per step; compute of 1x1 layers included)";
}

string generatorCost = mpi.Rank == 0 ? GeneratorCost.Measure() : "";

if (mpi.Rank == 0)
{
    var text = new List<string>
    {
        "# Pipeline benchmark",
        "",
        $"Measured on this machine ({Environment.ProcessorCount} cores), 2 ranks, one torch thread per rank; {Layers.Count} layers of {Layers.Width}x{Layers.Width} (tanh) in equal stages; batch {Batch}; median of {Repeats} steps after {Warmup} warm-up steps. The machine is shared and noisy: compare the ratios of one run.",
        "",
        $"Baseline: the same model in one process (rank 0, while rank 1 sleeps), forward+backward of the batch: {baselineBefore:F1} ms before the pipeline runs (used below), {baselineAfter:F1} ms after.",
        "",
        "## Pipeline efficiency",
        "Efficiency = measured speedup over the one-process model / the schedule's ideal speedup (from the simulator with B = 2F).",
        "",
        "| schedule | microbatches | step (ms) | speedup | ideal | efficiency |",
        "| --- | --- | --- | --- | --- | --- |",
    };
    text.AddRange(rows);
    text.AddRange(new[] { "", "![efficiency](efficiency.svg)", "", "## Send path (rank 0 to rank 1, header + data, with a one-byte reply)", "",
        "| MiB | send (ms) | send GiB/s | memcpy (ms) | memcpy GiB/s | send / memcpy bandwidth |", "| --- | --- | --- | --- | --- | --- |" });
    text.AddRange(bandwidth);
    text.AddRange(new[] { "", "## Runtime overhead", "", $"Tiny stages (1x1 layers), 64 microbatches, 1F1B: {overhead}.", "",
        "## Generator cost", "", $"{generatorCost}.", "",
        "Not measured here yet: peak resident memory per rank (tests/ParityApp's memory scenario measures what a rank releases)." });
    File.WriteAllText(Path.Combine(results, "latest.md"), string.Join("\n", text) + "\n");
    File.WriteAllText(Path.Combine(results, "efficiency.svg"), Svg(chart));
    Console.WriteLine(string.Join("\n", text));
}
return 0;

// The model in one process on rank 0, one torch thread; rank 1 sleeps on a non-blocking receive meanwhile.
static unsafe double Baseline(PipelineEnvironment mpi, Tensor x, Tensor y, Func<Tensor, Tensor, Tensor> loss)
{
    byte flag = 0;
    double ms = 0;
    if (mpi.Rank == 0)
    {
        torch.manual_seed(0);
        var model = new OneFOneBNet();
        ms = Median(() =>
        {
            model.zero_grad();
            loss(model.forward(x), y).backward();
        });
        MpiU.MPI_Send((IntPtr)(&flag), 1, MpiU.MPI_BYTE, 1, 99, MpiU.MPI_COMM_WORLD);
    }
    else
    {
        MpiU.MPI_Irecv((IntPtr)(&flag), 1, MpiU.MPI_BYTE, 0, 99, MpiU.MPI_COMM_WORLD, out int request);
        int done = 0;
        while (done == 0)
        {
            System.Threading.Thread.Sleep(2);
            MpiU.MPI_Test(ref request, out done, out _);
        }
    }
    mpi.Barrier();
    return ms;
}

static double Median(Action run)
{
    for (int i = 0; i < Warmup; i++) run();
    var times = new double[Repeats];
    for (int i = 0; i < Repeats; i++)
    {
        var clock = Stopwatch.StartNew();
        run();
        times[i] = clock.Elapsed.TotalMilliseconds;
    }
    Array.Sort(times);
    return times[Repeats / 2];
}

static string Svg(List<(string Label, double Efficiency)> bars)
{
    const int width = 720, rowHeight = 22, left = 300;
    int height = bars.Count * rowHeight + 40;
    var svg = new List<string> { $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">",
        $"<text x=\"{left}\" y=\"14\">pipeline efficiency (1.0 = the schedule's ideal)</text>" };
    for (int i = 0; i < bars.Count; i++)
    {
        double value = Math.Max(0, Math.Min(1.2, bars[i].Efficiency));
        int y = 24 + i * rowHeight, length = (int)(value / 1.2 * (width - left - 60));
        svg.Add($"<text x=\"{left - 6}\" y=\"{y + 14}\" text-anchor=\"end\">{System.Security.SecurityElement.Escape(bars[i].Label)}</text>");
        svg.Add($"<rect x=\"{left}\" y=\"{y + 3}\" width=\"{length}\" height=\"{rowHeight - 6}\" fill=\"#4c78a8\"/>");
        svg.Add($"<text x=\"{left + length + 4}\" y=\"{y + 14}\">{bars[i].Efficiency.ToString("F2", CultureInfo.InvariantCulture)}</text>");
    }
    int ideal = left + (int)(1.0 / 1.2 * (width - left - 60));
    svg.Add($"<line x1=\"{ideal}\" y1=\"20\" x2=\"{ideal}\" y2=\"{height - 10}\" stroke=\"#e45756\" stroke-dasharray=\"4\"/>");
    svg.Add("</svg>");
    return string.Join("\n", svg) + "\n";
}
