using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using Pippy.Runtime;
using Pippy.Schedules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PipelineBench;

/// <summary>
/// AdamW's state per rank with and without sharding it across data-parallel replicas (issue 19, ZeRO-1): the
/// activation-heavy model (16 MLP blocks, 4 stages) as 2 pipelines of 2 ranks (interleaved 1F1B, 2 stages per rank) on
/// 4 ranks. Each rank reports the elements its optimizer holds state for, the growth of its peak resident memory over five
/// training steps from before the first (AdamW allocates its two moments at its first step), and the step time of Step + clip + optimizer step (+ Gather).
/// PipelineBench optimizer &lt;results&gt; &lt;sharded|full&gt;, one configuration per job.
/// </summary>
public static class OptimizerMemory
{
    public static string Measure(PipelineEnvironment mpi, bool sharded)
    {
        manual_seed(0);
        var x = randn(256, 512);
        var y = randn(256, 512);
        Func<Tensor, Tensor, Tensor> loss = (o, t) => functional.mse_loss(o, t, Reduction.Sum);
        manual_seed(1);
        var model = new ActivationHeavy();
        using var pipe = ActivationHeavy.Pipeline.Build(model, mpi, new PipelineOptions
        {
            Schedule = ScheduleKind.Interleaved1F1B, StagesPerRank = 2, DataParallel = 2, Microbatches = 4, PrintPlan = false,
        });
        pipe.ReleaseOtherStages(model);
        var shard = sharded ? pipe.ShardOptimizerState() : null;
        var parameters = shard?.Parameters ?? pipe.Parameters();
        var optimizer = optim.AdamW(parameters, 1e-3);
        long stateElements = 2 * parameters.Sum(p => p.NumberOfElements);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        File.WriteAllText("/proc/self/clear_refs", "5"); // resets VmHWM to the current resident size
        long start = ActivationMemory.Status("VmRSS");
        var times = new double[5];
        for (int step = 0; step < times.Length; step++)
        {
            var clock = Stopwatch.StartNew();
            optimizer.zero_grad();
            pipe.Step(x, y, loss).Dispose();
            pipe.ClipGradNorm(1.0);
            optimizer.step();
            shard?.Gather();
            times[step] = clock.Elapsed.TotalMilliseconds;
        }
        long growth = ActivationMemory.Status("VmHWM") - start;
        Array.Sort(times);
        var elements = Enumerable.Range(0, mpi.Size).Select(r => mpi.Sum(mpi.Rank == r ? stateElements : 0)).ToArray();
        var growths = Enumerable.Range(0, mpi.Size).Select(r => mpi.Sum(mpi.Rank == r ? growth : 0) / (1 << 20)).ToArray();
        double slowest = Enumerable.Range(0, mpi.Size).Max(r => mpi.Sum(mpi.Rank == r ? times[times.Length / 2] : 0));
        return $"| {(sharded ? "sharded (ZeRO-1)" : "every replica holds all")} | {string.Join(" / ", elements.Select(e => $"{e * 4 / (1 << 20):0.0}"))} MiB | " +
               $"{string.Join(" / ", growths.Select(g => $"{g:0}"))} MiB | {slowest:0} ms |";
    }
}
