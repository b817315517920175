using System;
using System.IO;
using System.Linq;
using ParityApp.Models;
using Pippy.Runtime;
using Pippy.Runtime.Materialization;
using TorchSharp;
using static TorchSharp.torch;

namespace ParityApp;

/// <summary>What a rank holds of a model of four equal stages (4 x 16 MiB): released after the fact, or never materialized.</summary>
public static class Memory
{
    public static bool Measure(PipelineEnvironment mpi)
    {
        torch.manual_seed(0);
        var model = new WideChain();
        long modelBytes = model.parameters().Sum(p => p.NumberOfElements * p.ElementSize);
        using var pipe = WideChain.Pipeline.Build(model, mpi, new PipelineOptions { PrintPlan = false });
        long before = Status("VmRSS");
        long released = pipe.ReleaseOtherStages(model);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long after = Status("VmRSS");
        long kept = pipe.Parameters().Sum(p => p.NumberOfElements * p.ElementSize);
        var loss = pipe.Step(randn(8, 2048), randn(8, 2048), (o, t) => nn.functional.mse_loss(o, t, nn.Reduction.Sum));
        Console.WriteLine($"[rank {mpi.Rank}] model {modelBytes} bytes, kept {kept}, released {released}; " +
                          $"resident {before / (1 << 20)} MiB before release, {after / (1 << 20)} MiB after (drop {(before - after) / (1 << 20)} MiB); step loss {loss.item<float>():F1}");
        return released + kept == modelBytes && float.IsFinite(loss.item<float>());
    }

    /// <summary>
    /// Peak resident memory of one training step (SGD with momentum: parameters, gradients and momentum), above what
    /// the process held before the model was built. "plain": the whole model in one process (run it on 1 rank);
    /// "eager": the model built on every rank, then released; "lazy": built on the meta device, each rank
    /// materializing only its stage.
    /// </summary>
    public static bool Peak(PipelineEnvironment mpi, string mode)
    {
        using (var warm = randn(64, 64)) warm.matmul(warm).sum().item<float>(); // torch's own allocations first
        GC.Collect();
        GC.WaitForPendingFinalizers();
        File.WriteAllText("/proc/self/clear_refs", "5"); // resets VmHWM to the current resident size
        long start = Status("VmRSS");

        torch.manual_seed(0);
        const long ModelBytes = 4L * (2048 * 2048 + 2048) * sizeof(float);
        var (input, target) = (randn(8, 2048), randn(8, 2048));
        Func<Tensor, Tensor, Tensor> loss = (o, t) => nn.functional.mse_loss(o, t, nn.Reduction.Sum);
        float value;
        long held, built;
        if (mode == "plain")
        {
            var model = new WideChain();
            built = Status("VmHWM") - start;
            var optimizer = optim.SGD(model.parameters(), 0.01, momentum: 0.9);
            var l = loss(model.forward(input), target);
            l.backward();
            optimizer.step();
            (value, held) = (l.item<float>(), model.parameters().Sum(p => p.NumberOfElements * p.ElementSize));
        }
        else
        {
            var model = mode == "lazy" ? LazyModel.Construct(() => new WideChain()) : new WideChain();
            using var pipe = WideChain.Pipeline.Build(model, mpi, new PipelineOptions { PrintPlan = false, Initialization = WeightInitialization.Seeded(0) });
            if (mode == "eager") pipe.ReleaseOtherStages(model);
            built = Status("VmHWM") - start;
            var optimizer = optim.SGD(pipe.Parameters(), 0.01, momentum: 0.9);
            value = pipe.Step(input, target, loss).item<float>();
            optimizer.step();
            held = pipe.Parameters().Sum(p => p.NumberOfElements * p.ElementSize);
            if (mode == "lazy" && model.parameters().Count(p => !p.is_meta) != pipe.Parameters().Count)
                throw new InvalidOperationException("the lazy model has tensors with memory outside this rank's stage");
        }
        long peak = Status("VmHWM") - start;
        Console.WriteLine($"[rank {mpi.Rank}] {mode}: peak resident increase {peak / (1 << 20)} MiB ({built / (1 << 20)} MiB when built) for a model of {ModelBytes / (1 << 20)} MiB; " +
                          $"holds {held / (1 << 20)} MiB of parameters; loss {value:F1}");
        return float.IsFinite(value);
    }

    /// <summary>A size line of /proc/self/status (VmRSS: resident now; VmHWM: the peak since the last reset), in bytes.</summary>
    /// <summary>A keep mask [batch, time]: sample i keeps its first time - (i mod 3) positions (the rest is padding).</summary>
    public static Tensor Padding(long batch, long time)
    {
        var keep = ones(batch, time);
        for (long i = 0; i < batch; i++)
            if (i % 3 > 0) keep[i, TensorIndex.Slice(time - i % 3)] = zeros(i % 3);
        return keep;
    }

    /// <summary>
    /// Trains <see cref="UsingEncoder"/> (using declarations and a dispose scope in forward) for <paramref name="steps"/>
    /// steps and prints the resident memory after step 10 and after the last: tensors the stages or the runner failed
    /// to free would make it grow with every step.
    /// </summary>
    public static bool UsingSteps(PipelineEnvironment mpi, int steps)
    {
        torch.manual_seed(0);
        var model = new UsingEncoder(features: 64, dim: 128, heads: 4, outputs: 8);
        using var pipe = UsingEncoder.Pipeline.Build(model, mpi, new PipelineOptions { PrintPlan = false });
        var optimizer = optim.SGD(pipe.Parameters(), 0.001);
        Func<Tensor, Tensor, Tensor> loss = (o, t) => nn.functional.mse_loss(o, t, nn.Reduction.Sum);
        long atTen = 0, tensorsAtTen = 0, atEnd = 0, tensorsAtEnd = 0;
        float first = 0, last = 0;
        for (int step = 1; step <= steps; step++)
        {
            using var scope = NewDisposeScope();
            var g = new Generator((ulong)step);
            var (x, keep, target) = (randn(new long[] { 16, 32, 64 }, generator: g), Padding(16, 32), randn(new long[] { 16, 8 }, generator: g));
            optimizer.zero_grad();
            float value = pipe.Step(new[] { x, keep }, target, loss).item<float>();
            optimizer.step();
            if (step == 1) first = value;
            last = value;
            if (step == 10 || step == steps)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                // Both readings at the same point of a step: its batch and loss are still held here.
                if (step == 10) (atTen, tensorsAtTen) = (Status("VmRSS"), torch.Tensor.TotalCount);
                else (atEnd, tensorsAtEnd) = (Status("VmRSS"), torch.Tensor.TotalCount);
            }
        }
        Console.WriteLine($"[rank {mpi.Rank}] using-memory: resident {atTen / (1 << 10)} KiB after step 10, {atEnd / (1 << 10)} KiB after step {steps} " +
                          $"(growth {(atEnd - atTen) / (1 << 10)} KiB); live tensors {tensorsAtTen} after step 10, {tensorsAtEnd} after step {steps}; loss {first:F1} -> {last:F1}");
        return float.IsFinite(last);
    }

    private static long Status(string field)
    {
        var line = File.ReadAllLines("/proc/self/status").Single(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
    }
}
