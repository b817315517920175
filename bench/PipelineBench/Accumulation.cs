using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using Pippy;
using Pippy.Runtime;
using Pippy.Schedules;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PipelineBench;

/// <summary>Wide layers (16 MiB of float32 weights) in 2 stages on one rank: data-parallel replicas of it have much to sum.</summary>
[Pipeline(Schedule = ScheduleKind.Interleaved1F1B, StagesPerRank = 2, Microbatches = 1)]
public sealed partial class WideNet : Module<Tensor, Tensor>
{
    [SplitInto(2)] private readonly ModuleList<Linear> layers = new();
    public WideNet() : base(nameof(WideNet)) { for (int i = 0; i < 4; i++) layers.Add(Linear(1024, 1024)); RegisterComponents(); }
    public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x).tanh(); return x; }
}

/// <summary>
/// Gradient accumulation over k Steps with DataParallel = 2 (one rank per replica): k Steps that each sum the
/// gradients across the replicas, against k - 1 Steps inside NoSync and one outside it, alternating round by round.
/// Reports the reductions each way takes (from the runner's count) and the median time of an accumulation of each.
/// </summary>
public static class Accumulation
{
    public static string Measure(PipelineEnvironment mpi, int k = 4, int rounds = 15)
    {
        TorchSharp.torch.manual_seed(0);
        var model = new WideNet();
        using var pipe = WideNet.Pipeline.Build(model, mpi, new PipelineOptions { DataParallel = 2, PrintPlan = false });
        var x = randn(64, 1024);
        var y = randn(64, 1024);
        Func<Tensor, Tensor, Tensor> loss = (o, t) => functional.mse_loss(o, t, Reduction.Sum);
        var everyStep = new List<double>();
        var noSync = new List<double>();
        int reductionsEveryStep = 0, reductionsNoSync = 0;
        for (int round = -2; round < rounds; round++)
        {
            foreach (bool deferred in new[] { false, true })
            {
                using var scope = NewDisposeScope();
                foreach (var p in pipe.Parameters()) p.grad = null;
                mpi.Barrier();
                int before = pipe.GradientReductions;
                var clock = Stopwatch.StartNew();
                for (int step = 0; step < k; step++)
                {
                    using (deferred && step < k - 1 ? pipe.NoSync() : null) pipe.Step(x, y, loss);
                }
                double ms = clock.Elapsed.TotalMilliseconds;
                if (round < 0) continue;
                (deferred ? noSync : everyStep).Add(ms);
                if (deferred) reductionsNoSync = pipe.GradientReductions - before;
                else reductionsEveryStep = pipe.GradientReductions - before;
            }
        }
        double ratio = Median(everyStep.Zip(noSync, (a, b) => b / a));
        long bytes = pipe.Parameters().Sum(p => p.NumberOfElements * p.ElementSize);
        return string.Join("\n", new[]
        {
            "## Gradient accumulation: one reduction per optimizer step",
            "",
            $"DataParallel = 2 on 2 ranks, a pipeline of one rank (2 stages) with {bytes / (1 << 20)} MiB of gradients, {k} Steps accumulated per optimizer step, {rounds} rounds alternating the two ways (median).",
            "",
            "| way | reductions per accumulation | time of an accumulation |",
            "| --- | --- | --- |",
            $"| every Step sums across replicas | {reductionsEveryStep} | {Median(everyStep):0.0} ms |",
            $"| {k - 1} Steps inside NoSync, the last outside | {reductionsNoSync} | {Median(noSync):0.0} ms |",
            "",
            $"NoSync over every Step, median of the rounds' ratios: {ratio:0.00} (each saved reduction is a {bytes / (1 << 20)} MiB allreduce).",
        });
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        return sorted.Length == 0 ? double.NaN : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
