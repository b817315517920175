using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Text;
using Pippy;
using Pippy.Runtime;
using Pippy.Schedules;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PipelineBench;

/// <summary>
/// The seed README's quickstart, as issue 18 measured it: 512 -> [512, 1024, 256] ReLU blocks and a 256 -> 10 output
/// layer, split after the first two blocks (3 stages on 3 ranks), batch 512 x 512, MSE, forward + loss + backward.
/// In one job: rank 0 first times the plain model in one process while the other ranks wait (their waits give the core
/// back, so they do not slow it), then every schedule and microbatch count, in an order shuffled per round; each row is
/// the median of 10 steps after 3, and ratios are to the plain step of the same sitting.
/// </summary>
public static class SeedQuickstart
{
    private const int Warmup = 3, Steps = 10, Rounds = 2;

    public static string Measure(PipelineEnvironment mpi)
    {
        manual_seed(0);
        var x = randn(512, 512);
        var y = randn(512, 10);
        Func<Tensor, Tensor, Tensor> loss = (o, t) => functional.mse_loss(o, t, Reduction.Sum);

        double plain = 0;
        var chunked = new Dictionary<int, double>();
        if (mpi.Rank == 0)
        {
            manual_seed(1);
            var model = new SeedNet();
            plain = Median(() =>
            {
                model.zero_grad();
                loss(model.forward(x), y).backward();
            });
            // The fair reference for m microbatches: the same model in one process on the same m chunks (gradients
            // accumulated), which pays the small-matrix cost the pipeline pays, without any communication.
            foreach (int m in new[] { 8, 16, 64 })
            {
                var xs = x.tensor_split(m);
                var ys = y.tensor_split(m);
                chunked[m] = Median(() =>
                {
                    model.zero_grad();
                    for (int k = 0; k < m; k++) loss(model.forward(xs[k]), ys[k]).backward();
                });
            }
        }
        mpi.Barrier();
        plain = mpi.Sum(plain);
        foreach (int m in new[] { 8, 16, 64 }) chunked[m] = mpi.Sum(chunked.GetValueOrDefault(m));
        if (mpi.Size == 1)
            return $"Seed quickstart, one process, {get_num_threads()} torch thread(s): plain step {plain:0.0} ms; in 8 / 16 / 64 chunks " +
                   $"{chunked[8]:0.0} / {chunked[16]:0.0} / {chunked[64]:0.0} ms (medians of {Steps})";

        var cells = new List<(ScheduleKind Kind, int Microbatches)>();
        foreach (var kind in new[] { ScheduleKind.GPipe, ScheduleKind.OneFOneB })
            foreach (int m in new[] { 8, 16, 64 }) cells.Add((kind, m));
        // SEED_CELLS=OneFOneB:64,GPipe:64 measures only those cells (to study one); SEED_TRACE=dir writes their traces.
        string? only = Environment.GetEnvironmentVariable("SEED_CELLS");
        if (!string.IsNullOrWhiteSpace(only))
        {
            var wanted = only.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            cells.RemoveAll(c => !wanted.Contains($"{c.Kind}:{c.Microbatches}"));
        }
        string? traces = Environment.GetEnvironmentVariable("SEED_TRACE");
        var times = cells.ToDictionary(c => c, _ => new List<double>());
        var early = cells.ToDictionary(c => c, _ => 0);
        var random = new Random(18);
        for (int round = 0; round < Rounds; round++)
        {
            // The same shuffled order on every rank (same seed), a new order each round.
            foreach (var cell in cells.OrderBy(_ => random.Next()).ToArray())
            {
                manual_seed(1);
                var model = new SeedNet();
                using var pipe = SeedNet.Pipeline.Build(model, mpi, new PipelineOptions { Schedule = cell.Kind, Microbatches = cell.Microbatches, PrintPlan = false, TraceDirectory = traces is null ? null : System.IO.Path.Combine(traces, $"{cell.Kind}-{cell.Microbatches}") });
                double step = Median(() =>
                {
                    foreach (var p in pipe.Parameters()) p.grad?.zero_();
                    pipe.Step(x, y, loss);
                });
                early[cell] = (int)mpi.Sum(pipe.LastStep.ForwardsRunEarly);
                // The slowest rank's median is the pipeline's step.
                times[cell].Add(MaxOverRanks(mpi, step));
            }
        }
        var report = new StringBuilder();
        report.AppendLine($"Seed quickstart, {mpi.Size} ranks on {Environment.ProcessorCount} cores, wait policy {Pippy.Runtime.Communication.WaitPolicy.Current.Mode}: plain step {plain:0.0} ms " +
                          $"(one process on rank 0's thread while the others wait, median of {Steps}); ratios to it, and in brackets to the plain model run on the same m chunks");
        report.AppendLine();
        report.AppendLine("| | 8 microbatches | 16 | 64 |");
        report.AppendLine("|---|---|---|---|");
        report.AppendLine("| plain in m chunks | " + string.Join(" | ", new[] { 8, 16, 64 }.Select(m => $"{chunked[m]:0.0} ms")) + " |");
        foreach (var kind in new[] { ScheduleKind.GPipe, ScheduleKind.OneFOneB })
            report.AppendLine($"| {kind} | " + string.Join(" | ", new[] { 8, 16, 64 }.Select(m =>
            {
                if (!times.TryGetValue((kind, m), out var measured)) return "-";
                double ms = measured.Min();
                return $"{ms:0.0} ms = {ms / plain:0.00}x ({ms / chunked[m]:0.00}x)" + (early.GetValueOrDefault((kind, m)) > 0 ? $", {early[(kind, m)]} forwards early" : "");
            })) + " |");
        return report.ToString();
    }

    private static double MaxOverRanks(PipelineEnvironment mpi, double value)
    {
        // The largest value over the ranks, from sums: each rank's value in its own slot.
        double max = 0;
        for (int r = 0; r < mpi.Size; r++) max = Math.Max(max, mpi.Sum(mpi.Rank == r ? value : 0));
        return max;
    }

    private static double Median(Action step)
    {
        for (int i = 0; i < Warmup; i++) step();
        var samples = new double[Steps];
        for (int i = 0; i < Steps; i++)
        {
            var clock = Stopwatch.StartNew();
            step();
            samples[i] = clock.Elapsed.TotalMilliseconds;
        }
        Array.Sort(samples);
        return samples[Steps / 2];
    }
}

/// <summary>The seed network with its output layer: three ReLU blocks and a Linear head, in three stages.</summary>
[Pipeline]
public sealed partial class SeedNet : Module<Tensor, Tensor>
{
    [SplitEnd] private readonly Sequential layer0 = Sequential(Linear(512, 512), ReLU());
    [SplitEnd] private readonly Sequential layer1 = Sequential(Linear(512, 1024), ReLU());
    private readonly Sequential layer2 = Sequential(Linear(1024, 256), ReLU());
    private readonly Linear output = Linear(256, 10);

    public SeedNet() : base(nameof(SeedNet)) => RegisterComponents();

    public override Tensor forward(Tensor x)
    {
        x = layer0.forward(x);
        x = layer1.forward(x);
        x = layer2.forward(x);
        return output.forward(x);
    }
}
