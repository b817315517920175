using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using PipelineBench;
using Pippy.Runtime;
using Pippy.Runtime.Communication;
using Pippy.Runtime.Materialization;
using Pippy.Runtime.Transport;
using Pippy.Schedules;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using MpiU = MPI.Unsafe;

// bench/run.sh runs, in this order (2 ranks unless said):
//   PipelineBench progress <results>        under PIPPY_PROGRESS=none, mpich and poll: GPipe and 1F1B at m = 8
//   PipelineBench memory <results> plain    on 1 rank: peak memory of one training step of the whole model
//   PipelineBench memory <results> lazy     each rank builds only its stage (LazyModel)
//   PipelineBench pipeline <results>        everything else, then the report (latest.md, efficiency.svg)
//   PipelineBench accumulation <results>    DataParallel = 2: k accumulated Steps with and without NoSync (accumulation.md)
//   PipelineBench seed <results>            on 3 ranks: the seed quickstart against its plain step (seed.<wait policy>.md)
//   PipelineBench activations <results> <schedule> <on|off|blocks>   on 4 ranks (1: the plain model): peak memory with stage, no or block recomputation
//   PipelineBench optimizer <results> <sharded|full>   on 4 ranks (2 pipelines of 2): AdamW's state per rank, sharded or not
//   PipelineBench gpt <results>             on 4 ranks: samples/Gpt's model pipelined against it in one process (gpt.md)
// and by hand: PipelineBench bandwidth (the send path's table alone, e.g. to try UCX settings), PipelineBench transport
// (pipelines through shared memory against MPI alone), PipelineBench generator.
// Times are the fastest of Repeats steps after Warmup steps (the least disturbed on a shared machine), medians beside them.
const int Batch = 4096, Warmup = 3, Repeats = 15, Rounds = 30;
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
string mode = args.Length > 0 ? args[0] : "";
string results = args.Length > 1 ? args[1] : Path.Combine("bench", "results");
Directory.CreateDirectory(results);
torch.manual_seed(0);
var x = randn(Batch, Layers.Width);
var y = randn(Batch, Layers.LastWidth);
Func<Tensor, Tensor, Tensor> loss = (o, t) => functional.mse_loss(o, t, Reduction.Sum);

using var mpi = PipelineEnvironment.Start(ref args);

if (mode == "memory") return MemoryPeak(mpi, results, args[2]);
if (mode == "bandwidth")
{
    foreach (var row in SendBandwidth(mpi, new[] { 1, 16, 64, 256 })) Console.WriteLine(row);
    return 0;
}
// Modes that write one report (or append one row) in the results folder, from rank 0.
int Report(string file, string text, bool append = false)
{
    if (mpi.Rank != 0) return 0;
    Console.WriteLine(text);
    if (append) File.AppendAllText(Path.Combine(results, file), text + "\n");
    else File.WriteAllText(Path.Combine(results, file), text + "\n");
    return 0;
}
if (mode == "accumulation") return Report("accumulation.md", PipelineBench.Accumulation.Measure(mpi));
if (mode == "seed") return Report($"seed.{Pippy.Runtime.Communication.WaitPolicy.Current.Mode}.md", PipelineBench.SeedQuickstart.Measure(mpi));
if (mode == "activations")
    return Report("activations.rows.txt", PipelineBench.ActivationMemory.Measure(mpi, args.Length > 2 ? args[2] : "GPipe", args.Length > 3 ? args[3] : "off"), append: true);
if (mode == "optimizer") return Report("optimizer.rows.txt", PipelineBench.OptimizerMemory.Measure(mpi, args.Length > 2 && args[2] == "sharded"), append: true);
if (mode == "gpt") return Report("gpt.md", PipelineBench.GptSample.Measure(mpi));
if (mode == "generator")
{
    if (mpi.Rank == 0) Console.WriteLine(GeneratorCost.Measure());
    return 0;
}

var rows = new List<string>();
var chart = new List<(string Label, double Efficiency)>();

var headToHead = new List<string>();
var replayRows = new List<string>();

// Every schedule at one microbatch count, measured round by round: in each round one step of the one-process model on
// each core (rank 0 alone, then rank 1 alone) and then one step of each pipeline, so that all of them see the same
// moments of this shared machine (its speed changed by a third within a minute in some runs, single steps by 2x, and
// one core ran a third slower than the other for minutes). A pipeline keeps both cores busy and goes at the pace of
// the slower, so the one-process step it is compared with is the mean of the two cores' steps of the same round:
// measured on one core alone, the ratio would swing with whichever core that happened to be.
// Efficiency is the median over the rounds of (that round's one-process step / its pipeline step) / ideal.
List<(double Paired, double Fastest, double SlowerCore, double MedianStep, List<double> Steps)> Efficiencies(int m, params (string Name, Func<PipelineOptions, PipelineRunner<Tensor>> Build)[] schedules) =>
    Measure(m, report: true, schedules);

// The same rounds for pipelines compared with each other only (nothing goes to the efficiency table or chart).
List<(double Paired, double Fastest, double SlowerCore, double MedianStep, List<double> Steps)> Measure(int m, bool report, params (string Name, Func<PipelineOptions, PipelineRunner<Tensor>> Build)[] schedules)
{
    torch.manual_seed(0);
    var model = new OneFOneBNet();
    var pipes = schedules.Select(s => s.Build(new PipelineOptions { Microbatches = m, PrintPlan = false })).ToArray();
    var onCore = new[] { new List<double>(), new List<double>() };
    var steps = pipes.Select(_ => new List<(double Step, double Torch)>()).ToArray();
    var timelines = pipes.Select(_ => new List<string>()).ToArray();
    for (int round = -Warmup; round < Rounds; round++)
    {
        double core0 = BaselineStep(mpi, model, x, y, loss, busyNeighbour: false, on: 0);
        double core1 = mpi.Sum(BaselineStep(mpi, model, x, y, loss, busyNeighbour: false, on: 1));
        if (round >= 0) { onCore[0].Add(core0); onCore[1].Add(core1); }
        for (int i = 0; i < pipes.Length; i++)
        {
            foreach (var p in pipes[i].Parameters()) p.grad?.zero_();
            mpi.Barrier();
            var clock = Stopwatch.StartNew();
            pipes[i].Step(x, y, loss);
            if (round < 0) continue;
            steps[i].Add((clock.Elapsed.TotalMilliseconds, pipes[i].LastStep.ComputeMilliseconds));
            timelines[i].Add(string.Join(";", pipes[i].LastStep.Timeline.Select(t =>
                $"{t.Action.Stage} {(int)t.Action.Kind} {t.Action.Microbatch} {(t.End - t.Start).ToString("R", CultureInfo.InvariantCulture)}")));
        }
    }
    var measured = new List<(double, double, double, double, List<double>)>();
    var oneProcess = onCore[0].Zip(onCore[1], (a, b) => (a + b) / 2).ToList();
    double oneFastest = (onCore[0].Min() + onCore[1].Min()) / 2;
    for (int i = 0; i < pipes.Length; i++)
    {
        var pipe = pipes[i];
        var fastest = steps[i].MinBy(t => t.Step);
        // Each rank's least time in torch over the rounds: the stages' compute as it ran, rank against rank.
        double rank1Torch = mpi.Sum(mpi.Rank == 1 ? steps[i].Min(t => t.Torch) : 0);
        double rank0Torch = steps[i].Min(t => t.Torch);
        int v = pipe.Schedule.StageCount / pipe.Schedule.RankCount;
        var links = ScheduleBuilder.Links(pipe.Schedule.Kind, pipe.Schedule.StageCount, v, Enumerable.Range(0, pipe.Schedule.StageCount - 1).Select(s => (s, s + 1)));
        var costs = new ScheduleCosts { Forward = 1.0 / v, Backward = 2.0 / v, BackwardInput = 1.0 / v, BackwardWeight = 1.0 / v };
        double makespan = ScheduleSimulator.Measure(pipe.Schedule, links, costs).Makespan;
        double ideal = pipe.Schedule.RankCount * m * 3.0 / makespan;
        double medianStep = Median(steps[i].Select(t => t.Step));
        double paired = Median(oneProcess.Zip(steps[i], (o, t) => o / t.Step)) / ideal;
        double byFastest = oneFastest / fastest.Step / ideal;
        double coreZero = Median(onCore[0].Zip(steps[i], (o, t) => o / t.Step)) / ideal;
        // Against the slower core of each round: a pipeline of equal stages cannot go faster than that core allows, so
        // this separates what the runtime and the schedule lose from what the two cores' difference costs.
        double slowerCore = Median(onCore[0].Zip(onCore[1], Math.Max).Zip(steps[i], (o, t) => o / t.Step)) / ideal;
        measured.Add((paired, byFastest, slowerCore, medianStep, steps[i].Select(t => t.Step).ToList()));
        if (!report) continue;
        rows.Add($"| {schedules[i].Name} | {m} | {Median(onCore[0]):F1} / {Median(onCore[1]):F1} | {medianStep:F1} | {fastest.Step:F1} | " +
                 $"{rank0Torch:F1} / {rank1Torch:F1} | {ideal:F2} | **{paired:F2}** | {byFastest:F2} | {coreZero:F2} | {slowerCore:F2} |");
        chart.Add(($"{schedules[i].Name} m={m}", paired));

        // The fastest step replayed: every rank's compute actions with the times they took, communication free. That
        // is the step the schedule allows with the compute as it ran; the rest of the measured step is the runtime's.
        int fastestRound = (int)mpi.Sum(mpi.Rank == 0 ? steps[i].IndexOf(fastest) : 0);
        var durations = Gather(mpi, timelines[i][fastestRound]).SelectMany(line => line.Split(';', StringSplitOptions.RemoveEmptyEntries))
            .Select(entry => entry.Split(' '))
            .ToDictionary(f => new PipelineAction(int.Parse(f[0]), (ActionKind)int.Parse(f[1]), int.Parse(f[2])), f => double.Parse(f[3], CultureInfo.InvariantCulture));
        static bool Compute(ActionKind kind) => kind is ActionKind.Forward or ActionKind.Backward or ActionKind.BackwardInput or ActionKind.BackwardWeight;
        double allowed = ScheduleSimulator.Measure(pipe.Schedule, links, (_, a) => Compute(a.Kind) ? durations[a] : 0).Makespan;
        replayRows.Add($"| {schedules[i].Name} | {m} | {fastest.Step:F1} | {allowed:F1} | **{allowed / fastest.Step:F2}** |");
    }
    // Schedules against each other, round by round: the first schedule's step over each other's in the same round.
    for (int i = 1; i < pipes.Length && report; i++)
        headToHead.Add($"| {m} | {schedules[0].Name} / {schedules[i].Name} | **{Median(steps[0].Zip(steps[i], (a, b) => a.Step / b.Step)):F2}** | {steps[0].Min(t => t.Step) / steps[i].Min(t => t.Step):F2} |");
    foreach (var pipe in pipes) pipe.Dispose();
    return measured;
}

(string, Func<PipelineOptions, PipelineRunner<Tensor>>) GPipe = ("GPipe", o => GPipeNet.Pipeline.Build(new GPipeNet(), mpi, o));
(string, Func<PipelineOptions, PipelineRunner<Tensor>>) OneFOneB = ("1F1B", o => OneFOneBNet.Pipeline.Build(new OneFOneBNet(), mpi, o));
(string, Func<PipelineOptions, PipelineRunner<Tensor>>) Interleaved = ("Interleaved 1F1B (v=2)", o => InterleavedNet.Pipeline.Build(new InterleavedNet(), mpi, o));

// Messages through shared memory (the default between ranks of one machine) against MPI alone, the same pipelines in
// the same rounds: the step ratio, and each one's efficiency.
List<string> SharedAgainstMpi()
{
    var transportRows = new List<string>();
    foreach (int m in new[] { 8, 16 })
        foreach (var schedule in new[] { GPipe, OneFOneB })
        {
            var both = Measure(m, report: false, schedule, (schedule.Item1, o => schedule.Item2(new PipelineOptions { Microbatches = o.Microbatches, PrintPlan = false, SharedMemory = false })));
            transportRows.Add($"| {schedule.Item1} | {m} | {both[0].MedianStep:F1} / {both[1].MedianStep:F1} | **{Median(both[0].Steps.Zip(both[1].Steps, (a, b) => a / b)):F2}** | " +
                              $"{both[0].Paired:F2} / {both[1].Paired:F2} | {both[0].SlowerCore:F2} / {both[1].SlowerCore:F2} |");
        }
    return transportRows;
}

if (mode == "transport")
{
    var table = SharedAgainstMpi();
    if (mpi.Rank == 0) Console.WriteLine(string.Join("\n", table));
    return 0;
}

if (mode == "progress")
{
    // One line per schedule for the progress table of the report: which thread (if any) drives MPI while ranks compute.
    var progress = mpi.Progress;
    var measured = Efficiencies(8, GPipe, OneFOneB);
    if (mpi.Rank == 0) Console.WriteLine($"PIPPY_PROGRESS={progress}:\n{string.Join("\n", replayRows)}");
    if (mpi.Rank == 0)
        File.WriteAllText(Path.Combine(results, $"progress.{progress}.txt"),
            $"| {progress} | {measured[0].MedianStep:F1} / {measured[1].MedianStep:F1} | {measured[0].Paired:F2} | {measured[1].Paired:F2} | {measured[0].Fastest:F2} | {measured[1].Fastest:F2} | {measured[0].SlowerCore:F2} | {measured[1].SlowerCore:F2} |\n");
    return 0;
}

var baselineBefore = Baseline(mpi, x, y, loss);
foreach (int m in new[] { 4, 8, 16 })
    Efficiencies(m, Interleaved, OneFOneB, GPipe);
Efficiencies(1, ("naive model parallel (GPipe, 1 microbatch)", GPipe.Item2));

var transportRows = SharedAgainstMpi();
var baselineAfter = Baseline(mpi, x, y, loss);
var baselineIdle = Baseline(mpi, x, y, loss);
var baselineBusy = Baseline(mpi, x, y, loss, busyNeighbour: true);

// What microbatching alone costs: the one-process model on the batch in m chunks (gradients accumulated), against
// the batch in one piece, round by round on rank 0. Smaller operations and more of them: no pipeline can avoid it.
var chunkCost = new List<string>();
if (mpi.Rank == 0)
{
    torch.manual_seed(0);
    var model = new OneFOneBNet();
    var times = new[] { 1, 4, 8, 16 }.ToDictionary(k => k, _ => new List<double>());
    for (int round = -Warmup; round < Rounds; round++)
        foreach (var (chunks, list) in times)
        {
            var clock = Stopwatch.StartNew();
            using (var scope = NewDisposeScope())
            {
                model.zero_grad();
                foreach (var (cx, cy) in x.chunk(chunks).Zip(y.chunk(chunks))) loss(model.forward(cx), cy).backward();
            }
            if (round >= 0) list.Add(clock.Elapsed.TotalMilliseconds);
        }
    foreach (var (chunks, list) in times.Where(t => t.Key > 1))
        chunkCost.Add($"| {chunks} | {list.Min():F1} | {times[1].Min():F1} | **{list.Min() / times[1].Min():F2}** | {Median(list) / Median(times[1]):F2} |");
}
mpi.Barrier();

var bandwidth = SendBandwidth(mpi, new[] { 1, 4, 16, 64, 256 });

// Runtime overhead: tiny stages, so that a step is mostly the runtime's own bookkeeping. Each rank measures the time
// inside torch (forward, loss, autograd) and inside the transport (MPI); the rest, per action, is the overhead.
torch.manual_seed(0);
var tinyX = randn(64, 1);
var tinyY = randn(64, 1);
string overhead;
using (var tiny = TinyNet.Pipeline.Build(new TinyNet(), mpi, new PipelineOptions { PrintPlan = false }))
{
    var perAction = new List<double>();
    StepStatistics last = default;
    Time(() =>
    {
        mpi.Barrier();
        tiny.Step(tinyX, tinyY, loss);
        perAction.Add(tiny.LastStep.OverheadMicrosecondsPerAction);
        last = tiny.LastStep;
    });
    perAction.Sort();
    overhead = $"**{perAction[0]:F1} µs** per action (fastest step; median {perAction[perAction.Count / 2]:F1} µs): {last.Timeline.Count} actions per rank, " +
               $"a step of {last.RunMilliseconds:F2} ms of which {last.ComputeMilliseconds:F2} ms in torch and {last.CommunicationMilliseconds:F2} ms in the transport (last step, rank 0): " +
               $"with the transport's share, {(last.RunMilliseconds - last.ComputeMilliseconds) * 1000 / Math.Max(1, last.Timeline.Count):F1} µs per action outside torch, waits for the other rank included";
}

string generatorCost = mpi.Rank == 0 ? GeneratorCost.Measure() : "";

if (mpi.Rank == 0)
{
    var text = new List<string>
    {
        "# Pipeline benchmark",
        "",
        $"Measured on this machine ({Environment.ProcessorCount} cores), 2 ranks, one torch thread per rank; {Layers.Count} layers of {Layers.Width}x{Layers.Width} (tanh; the last {Layers.Width}x{Layers.LastWidth}) in stages of equal work; batch {Batch}. " +
        "The machine is shared and noisy (single steps vary by 2x, and one core can run a third slower than the other for minutes): every ratio below compares steps taken seconds apart, and is given as the median over rounds.",
        "",
        $"Baseline: the same model in one process (rank 0, while rank 1 sleeps), forward+backward of the batch: fastest {baselineBefore.Fastest:F1} ms (median {baselineBefore.Median:F1}) before the pipeline runs, " +
        $"fastest {baselineAfter.Fastest:F1} ms (median {baselineAfter.Median:F1}) after. The layer size keeps microbatches compute-bound (what the chunks cost is measured below).",
        "",
        $"The same one-process step while the other core runs the same model (both cores busy, as in a pipeline): fastest {baselineBusy.Fastest:F1} ms (median {baselineBusy.Median:F1}), " +
        $"against {baselineIdle.Fastest:F1} ms (median {baselineIdle.Median:F1}) with the other core idle just before: {baselineBusy.Median / baselineIdle.Median:F2}x by medians. " +
        "Where the compute slows when both cores work, that bounds every efficiency below (efficiency 1 needs cores that do not slow each other).",
        "",
        "## Pipeline efficiency",
        $"Efficiency = measured speedup over the one-process model / the schedule's ideal speedup (from the simulator with B = 2F). The schedules of one microbatch count are measured together, {Rounds} rounds after {Warmup} warm-up rounds: " +
        "each round runs one step of the one-process model on each core (rank 0 alone, then rank 1 alone) and then one step of each pipeline. " +
        "A pipeline keeps both cores busy and goes at the pace of the slower one, so a round's one-process step is the mean of its two cores' steps " +
        "(on one core alone the ratio would swing with whichever core that happened to be: the column against core 0 alone shows it). " +
        "**Efficiency** is the median over the rounds of (that round's one-process step / its pipeline step) / ideal; beside it the same from the fastest steps " +
        "(the least disturbed one-process step of each core over the fastest pipeline step). The last column takes each round's slower core as the one-process step: " +
        "a pipeline of equal stages cannot outrun its slower core, so that column is what the runtime and the schedule reach with the cores as they ran, and the gap to the efficiency is what the cores' difference cost.",
        "",
        "The least torch time of each rank over the rounds compares the ranks: the first layer needs no input gradient (the batch needs none), " +
        $"so the last layer is narrower ({Layers.Width} to {Layers.LastWidth}) to even out the work, 11 matrix products of 12 on each rank.",
        "",
        "| schedule | microbatches | one process on core 0 / core 1, median (ms) | pipeline step, median (ms) | fastest step (ms) | least torch time, rank 0 / rank 1 (ms) | ideal speedup | efficiency (median of rounds) | efficiency (fastest steps) | against core 0 alone | against the slower core |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    };
    text.AddRange(rows);
    text.AddRange(new[] { "", "![efficiency](efficiency.svg)", "",
        "### Schedules head to head", "",
        "Step time of one schedule over another's in the same round (below 1: the first is faster); the median over the rounds, and the ratio of their fastest steps.", "",
        "| microbatches | schedules | step ratio (median of rounds) | fastest / fastest |", "| --- | --- | --- | --- |" });
    text.AddRange(headToHead);
    text.AddRange(new[] { "", "### What the runtime itself loses", "",
        "Each schedule's fastest step replayed: every rank's compute actions (forward with the loss, backward) with the times they took in that step, " +
        "messages free, in the table's order and dependencies (the schedule simulator). That is the step the schedule allows with the compute as it ran, " +
        "noise and slow cores included; the rest of the measured step (waiting on messages, copies, the runtime's own work, the batch split and the loss broadcast) is what the runtime loses.", "",
        "| schedule | microbatches | fastest step (ms) | the schedule allows with its compute (ms) | ratio |", "| --- | --- | --- | --- | --- |" });
    text.AddRange(replayRows);
    text.AddRange(new[] { "", "### Shared memory against MPI alone", "",
        "The same pipeline with its messages through shared memory (the default between ranks of one machine) and through MPI alone (PIPPY_SHARED_MEMORY=0), " +
        $"in the same {Rounds} rounds as above (one-process steps on each core, then each pipeline); below 1 the shared-memory step is faster.", "",
        "| schedule | microbatches | median step, shared / MPI (ms) | step ratio, shared / MPI (median of rounds) | efficiency, shared / MPI | against the slower core, shared / MPI |",
        "| --- | --- | --- | --- | --- | --- |" });
    text.AddRange(transportRows);
    text.AddRange(new[] { "", "### What microbatching alone costs", "",
        "The one-process model on the batch in m chunks, one after another with gradients accumulated (what every pipeline does to its microbatches), against the batch in one piece; " +
        $"{Rounds} rounds on rank 0 while rank 1 waits. Every efficiency above includes this cost.", "",
        "| chunks | fastest (ms) | one piece, fastest (ms) | ratio | ratio of medians |", "| --- | --- | --- | --- | --- |" });
    text.AddRange(chunkCost);
    text.Add("");
    var progressRows = Enum.GetValues<CommunicationProgress>().Select(p => Path.Combine(results, $"progress.{p}.txt")).Where(File.Exists).Select(f => File.ReadAllText(f).TrimEnd()).ToArray();
    if (progressRows.Length > 0)
    {
        text.AddRange(new[] { "## Who moves messages while ranks compute (m = 8, each in its own job; PIPPY_PROGRESS)", "",
            "Each job measures its one-process steps under the same setting, so a progress thread that slows every process (it spins beside the compute on these 2 cores) shows in the step times rather than in the efficiencies.", "",
            "| progress | median step, GPipe / 1F1B (ms) | GPipe efficiency (median of rounds) | 1F1B efficiency (median of rounds) | GPipe (fastest steps) | 1F1B (fastest steps) | GPipe against the slower core | 1F1B against the slower core |", "| --- | --- | --- | --- | --- | --- | --- | --- |" });
        text.AddRange(progressRows);
        text.Add("");
    }
    text.AddRange(new[] { "## Send path (rank 0 to rank 1, memory only into a receive posted in advance, with a one-byte reply)", "",
        "Shared memory is the default between ranks of one machine (the sender copies into a slot the receiver reads in place); MPI alone (UCX, the receiver's kernel copy) " +
        "is what ranks on different machines use, and what PIPPY_SHARED_MEMORY=0 gives here.", "",
        $"The two paths and an in-process copy (on rank 0 while rank 1 waits, so one core copies as in a send) alternate, {Repeats} rounds after {Warmup}: medians, the median of each round's bandwidth ratio, and the ratio of the fastest of each.", "",
        "| MiB | path | send, median (ms) | send GiB/s | memcpy, median (ms) | memcpy GiB/s | send / memcpy bandwidth (median of rounds) | fastest / fastest |", "| --- | --- | --- | --- | --- | --- | --- | --- |" });
    text.AddRange(bandwidth);
    text.AddRange(new[] { "", "## Runtime overhead", "", $"Tiny stages (1x1 layers), 64 microbatches, 1F1B: {overhead}.", "",
        "## Generator cost", "", $"{generatorCost}.", "" });
    var memory = new[] { "plain", "lazy" }.Select(m => Path.Combine(results, $"memory.{m}.txt")).Where(File.Exists).SelectMany(File.ReadAllLines).ToArray();
    if (memory.Length > 0)
    {
        text.AddRange(new[] { "## Peak resident memory of one training step (SGD with momentum)", "",
            "| run | rank | peak above start (MiB) | parameters held (MiB) |", "| --- | --- | --- | --- |" });
        text.AddRange(memory);
        text.Add("");
    }
    // Written by the accumulation job that bench/run.sh runs before this one.
    if (File.Exists(Path.Combine(results, "accumulation.md"))) text.AddRange(File.ReadAllLines(Path.Combine(results, "accumulation.md")).Append(""));
    File.WriteAllText(Path.Combine(results, "latest.md"), string.Join("\n", text));
    File.WriteAllText(Path.Combine(results, "efficiency.svg"), Svg(chart));
    Console.WriteLine(string.Join("\n", text));
}
return 0;

// Send path: rank 0 sends a tensor to rank 1 and waits for a one-byte reply. The transport learns the message on
// the first round (as in a pipeline step), so the timed rounds send memory only (or a shared-memory notice) into a
// receive posted in advance; the receiver gives the buffer or slot back at once. Both paths are measured: shared
// memory (the default between ranks of one machine: the sender copies into a slot the receiver reads in place) and
// MPI alone (UCX: the receiver copies with the kernel from the sender's memory); ranks that cannot share memory
// (on two hosts) measure MPI's path alone. Rows of the report's table on rank 0,
// against an in-process copy of the same size (both ranks copy at once, as both take part in a send), measured in
// alternation round by round like the pipelines: the median of each round's ratio, and the ratio of the fastest of each.
static List<string> SendBandwidth(PipelineEnvironment mpi, int[] sizesMiB)
{
    var bandwidth = new List<string>();
    var peers = SharedMemoryPeers.Discover(MpiCommunicator.World(TimeSpan.FromMinutes(5)), willing: true);
    using var shared = new TensorTransport(MpiCommunicator.World(System.Threading.Timeout.InfiniteTimeSpan), learn: true, sharedMemory: peers);
    using var mpiOnly = new TensorTransport(MpiCommunicator.World(System.Threading.Timeout.InfiniteTimeSpan), learn: true);
    // Ranks on two hosts (bench/two-hosts.sh) cannot share memory: MPI's path alone, across the link.
    var paths = shared.SharesMemoryWith(1 - mpi.Rank) ? new[] { ("shared memory", shared), ("MPI", mpiOnly) } : new[] { ("MPI", mpiOnly) };
    foreach (int mib in sizesMiB)
    {
        using var data = randn(mib * (1L << 20) / 4);
        using var copy = empty_like(data);
        var sends = paths.Select(_ => new List<double>()).ToArray();
        var copies = new List<double>();
        for (int round = -Warmup; round < Repeats; round++)
        {
            for (int k = 0; k < paths.Length; k++)
            {
                var transport = paths[k].Item2;
                mpi.Barrier();
                var clock = Stopwatch.StartNew();
                if (mpi.Rank == 0)
                {
                    transport.Send(data, 1, 100 + mib);
                    transport.WaitForSends();
                    transport.Receive(new[] { (1, 8) });
                }
                else
                {
                    var received = transport.Receive(new[] { (0, 100 + mib) });
                    transport.Return(received[0].Value!);
                    transport.Send(null, 0, 8);
                    transport.WaitForSends();
                }
                if (round >= 0) sends[k].Add(clock.Elapsed.TotalMilliseconds);
            }
            // The reference copy on rank 0 alone, the other core idle (rank 1 waits at the barrier), as a send's copy runs.
            mpi.Barrier();
            if (mpi.Rank == 0)
            {
                var copyClock = Stopwatch.StartNew();
                copy.copy_(data);
                if (round >= 0) copies.Add(copyClock.Elapsed.TotalMilliseconds);
            }
            mpi.Barrier();
        }
        if (mpi.Rank != 0) continue;
        for (int k = 0; k < paths.Length; k++)
        {
            var times = sends[k];
            bandwidth.Add($"| {mib} | {paths[k].Item1} | {Median(times):F2} | {mib / 1024.0 / (Median(times) / 1000):F2} | {Median(copies):F2} | {mib / 1024.0 / (Median(copies) / 1000):F2} | " +
                          $"**{Median(copies.Zip(times, (c, t) => c / t)):F2}** | {copies.Min() / times.Min():F2} |");
        }
    }
    return bandwidth;
}

// One step of the model in one process on rank `on` (its time there; 0 on the other rank). The other rank meanwhile
// sleeps on a non-blocking receive, or with busyNeighbour runs the same step of its own copy, so that both cores
// work as they do in a pipeline.
static unsafe double BaselineStep(PipelineEnvironment mpi, OneFOneBNet model, Tensor x, Tensor y, Func<Tensor, Tensor, Tensor> loss, bool busyNeighbour, int on = 0)
{
    byte flag = 0;
    double time = 0;
    mpi.Barrier();
    if (mpi.Rank == on || busyNeighbour)
    {
        var clock = Stopwatch.StartNew();
        using (var scope = NewDisposeScope())
        {
            model.zero_grad();
            loss(model.forward(x), y).backward();
        }
        time = clock.Elapsed.TotalMilliseconds;
    }
    if (busyNeighbour) return time;
    if (mpi.Rank == on) MpiU.MPI_Send((IntPtr)(&flag), 1, MpiU.MPI_BYTE, 1 - on, 98, MpiU.MPI_COMM_WORLD);
    else
    {
        MpiU.MPI_Irecv((IntPtr)(&flag), 1, MpiU.MPI_BYTE, on, 98, MpiU.MPI_COMM_WORLD, out int request);
        for (int done = 0; done == 0; MpiU.MPI_Test(ref request, out done, out _)) System.Threading.Thread.Sleep(1);
    }
    return time;
}

static double Median(IEnumerable<double> values)
{
    var sorted = values.OrderBy(v => v).ToArray();
    return sorted[sorted.Length / 2];
}

// The model in one process on rank 0, one torch thread, Repeats steps after Warmup: fastest and median (rank 0's;
// zeros on rank 1). Rank 1 sleeps meanwhile, or with busyNeighbour runs the same steps, as both cores do in a pipeline.
static (double Fastest, double Median) Baseline(PipelineEnvironment mpi, Tensor x, Tensor y, Func<Tensor, Tensor, Tensor> loss, bool busyNeighbour = false)
{
    torch.manual_seed(0);
    var model = new OneFOneBNet();
    for (int i = 0; i < Warmup; i++) BaselineStep(mpi, model, x, y, loss, busyNeighbour);
    var times = Enumerable.Range(0, Repeats).Select(_ => BaselineStep(mpi, model, x, y, loss, busyNeighbour)).ToArray();
    return (times.Min(), Median(times));
}

// One training step of a 128 MiB model (8 layers of 2048x2048): the whole model in one process ("plain", 1 rank), or
// each of 2 ranks building only its stage (LazyModel). Peak resident memory above what the process held before.
static int MemoryPeak(PipelineEnvironment mpi, string results, string kind)
{
    using (var warm = randn(64, 64)) warm.matmul(warm).sum().item<float>();
    GC.Collect();
    File.WriteAllText("/proc/self/clear_refs", "5"); // resets VmHWM to the current resident size
    long start = Status("VmRSS");
    var (input, target) = (randn(64, 2048), randn(64, 2048));
    long held;
    if (kind == "plain")
    {
        var model = new MemoryNet();
        var optimizer = optim.SGD(model.parameters(), 0.01, momentum: 0.9);
        functional.mse_loss(model.forward(input), target).backward();
        optimizer.step();
        held = model.parameters().Sum(p => p.NumberOfElements * p.ElementSize);
    }
    else
    {
        using var pipe = MemoryNet.Pipeline.Build(LazyModel.Construct(() => new MemoryNet()), mpi,
            new PipelineOptions { PrintPlan = false, Initialization = WeightInitialization.Seeded(0) });
        var optimizer = optim.SGD(pipe.Parameters(), 0.01, momentum: 0.9);
        pipe.Step(input, target, (o, t) => functional.mse_loss(o, t));
        optimizer.step();
        held = pipe.Parameters().Sum(p => p.NumberOfElements * p.ElementSize);
    }
    long peak = Status("VmHWM") - start;
    string line = $"| {(kind == "plain" ? "whole model, one process" : "lazily built pipeline, 2 ranks")} | {mpi.Rank} | {peak >> 20} | {held >> 20} |";
    var all = mpi.Size == 1 ? new[] { line } : Gather(mpi, line);
    if (mpi.Rank == 0) File.WriteAllLines(Path.Combine(results, $"memory.{kind}.txt"), all);
    return 0;

    static long Status(string field) =>
        long.Parse(File.ReadAllLines("/proc/self/status").Single(l => l.StartsWith(field + ":", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
}

// Every rank's line on rank 0 (through files, in rank order: the lines are short and the ranks share a disk).
static string[] Gather(PipelineEnvironment mpi, string line)
{
    string folder = Path.Combine(Path.GetTempPath(), "pippy-bench-gather");
    Directory.CreateDirectory(folder);
    File.WriteAllText(Path.Combine(folder, $"{mpi.Rank}.txt"), line);
    mpi.Barrier();
    var lines = Enumerable.Range(0, mpi.Size).Select(r => File.ReadAllText(Path.Combine(folder, $"{r}.txt"))).ToArray();
    mpi.Barrier(); // every rank has read before any writes the next
    return lines;
}

static (double Fastest, double Median) Time(Action run)
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
    return (times[0], times[Repeats / 2]);
}

static string Svg(List<(string Label, double Efficiency)> bars)
{
    const int width = 720, rowHeight = 22, left = 300;
    int height = bars.Count * rowHeight + 40;
    var svg = new List<string> { $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">",
        $"<text x=\"{left}\" y=\"14\">pipeline efficiency (1.0 = the schedule's ideal; median of rounds)</text>" };
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
