using System;
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

/// <summary>
/// Peak memory of training steps on a model whose activations dominate (issue 19): 4 stages of 4 MLP blocks
/// (512 -> 2048 -> 512, GELU), batch 2048 x 512, 8 microbatches, forward + loss + backward, no optimizer. One
/// configuration per process (PipelineBench activations &lt;results&gt; &lt;schedule&gt; &lt;on|off|blocks&gt;: whole stages
/// recomputed with PipelineOptions.Recompute, none, or each block with [Recompute]), so that memory
/// one configuration freed and the C heap kept does not count for the next. Each rank reports the growth of its peak
/// resident memory (VmHWM) over three steps, from just before the first; the row also gives the median step time.
/// On 1 rank it measures the plain model in one process, the whole batch at once.
/// </summary>
public static class ActivationMemory
{
    private const int Width = 512, Hidden = 2048, Rows = 2048, Microbatches = 8, Steps = 3;

    public static string Measure(PipelineEnvironment mpi, string schedule, string recomputation)
    {
        bool recompute = recomputation == "on", blocks = recomputation == "blocks";
        manual_seed(0);
        var x = randn(Rows, Width);
        var y = randn(Rows, Width);
        Func<Tensor, Tensor, Tensor> loss = (o, t) => functional.mse_loss(o, t, Reduction.Sum);
        manual_seed(1);
        Module<Tensor, Tensor> model = blocks ? new ActivationHeavyRecomputed() : new ActivationHeavy();
        long parameters = model.parameters().Sum(p => p.NumberOfElements * p.ElementSize);
        double[] times = new double[Steps];
        long growth;
        if (mpi.Size == 1)
        {
            growth = PeakGrowth(() =>
            {
                for (int i = 0; i < Steps; i++)
                {
                    using var scope = NewDisposeScope();
                    var clock = Stopwatch.StartNew();
                    model.zero_grad();
                    loss(model.forward(x), y).backward();
                    times[i] = clock.Elapsed.TotalMilliseconds;
                }
            });
            Array.Sort(times);
            return $"| plain model, one process, whole batch | - | {growth / (1 << 20)} MiB | {times[Steps / 2]:0} ms |";
        }
        var kind = Enum.Parse<ScheduleKind>(schedule);
        var options = new PipelineOptions { Schedule = kind, Microbatches = Microbatches, Recompute = recompute, PrintPlan = false };
        using PipelineRunner<Tensor> pipe = blocks
            ? ActivationHeavyRecomputed.Pipeline.Build((ActivationHeavyRecomputed)model, mpi, options)
            : ActivationHeavy.Pipeline.Build((ActivationHeavy)model, mpi, options);
        pipe.ReleaseOtherStages(model);
        growth = PeakGrowth(() =>
        {
            for (int i = 0; i < Steps; i++)
            {
                var clock = Stopwatch.StartNew();
                foreach (var p in pipe.Parameters()) p.grad?.zero_();
                pipe.Step(x, y, loss).Dispose();
                times[i] = clock.Elapsed.TotalMilliseconds;
            }
        });
        Array.Sort(times);
        var peaks = Enumerable.Range(0, mpi.Size).Select(r => mpi.Sum(mpi.Rank == r ? growth : 0) / (1 << 20)).ToArray();
        double step = Enumerable.Range(0, mpi.Size).Max(r => mpi.Sum(mpi.Rank == r ? times[Steps / 2] : 0));
        return $"| {kind} | {(recompute ? "stages" : blocks ? "blocks ([Recompute])" : "off")} | {string.Join(" / ", peaks.Select(p => $"{p:0}"))} MiB | {step:0} ms |";
    }

    /// <summary>How far the peak resident memory rises above the resident memory before <paramref name="work"/>.</summary>
    private static long PeakGrowth(Action work)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        File.WriteAllText("/proc/self/clear_refs", "5"); // resets VmHWM to the current resident size
        long start = Status("VmRSS");
        work();
        return Status("VmHWM") - start;
    }

    /// <summary>A field of /proc/self/status in bytes (VmRSS: resident now; VmHWM: the peak since the last reset).</summary>
    internal static long Status(string field)
    {
        var line = File.ReadAllLines("/proc/self/status").Single(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
    }
}

/// <summary>An MLP block: most of its memory in training is the activations its backward needs.</summary>
public sealed class MlpBlock : Module<Tensor, Tensor>
{
    private readonly Linear up = Linear(512, 2048);
    private readonly GELU act = GELU();
    private readonly Linear down = Linear(2048, 512);

    public MlpBlock() : base(nameof(MlpBlock)) => RegisterComponents();

    public override Tensor forward(Tensor x) => x + down.forward(act.forward(up.forward(x)));
}

/// <summary>16 MLP blocks in 4 stages.</summary>
[Pipeline]
public sealed partial class ActivationHeavy : Module<Tensor, Tensor>
{
    [SplitInto(4)] private readonly ModuleList<MlpBlock> blocks = new();

    public ActivationHeavy() : base(nameof(ActivationHeavy))
    {
        for (int i = 0; i < 16; i++) blocks.Add(new MlpBlock());
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        foreach (var block in blocks)
            x = block.forward(x);
        return x;
    }
}

/// <summary>The same 16 MLP blocks, each recomputed in the backward ([Recompute] on the list): a stage keeps each block's input.</summary>
[Pipeline]
public sealed partial class ActivationHeavyRecomputed : Module<Tensor, Tensor>
{
    [Recompute, SplitInto(4)] private readonly ModuleList<MlpBlock> blocks = new();

    public ActivationHeavyRecomputed() : base(nameof(ActivationHeavyRecomputed))
    {
        for (int i = 0; i < 16; i++) blocks.Add(new MlpBlock());
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        foreach (var block in blocks)
            x = block.forward(x);
        return x;
    }
}
