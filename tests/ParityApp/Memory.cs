using System;
using System.IO;
using System.Linq;
using ParityApp.Models;
using Pippy.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace ParityApp;

/// <summary>What a rank keeps of a model of four equal stages once the other ranks' stages are released.</summary>
public static class Memory
{
    public static bool Measure(PipelineEnvironment mpi)
    {
        torch.manual_seed(0);
        var model = new WideChain();
        long modelBytes = model.parameters().Sum(p => p.NumberOfElements * p.ElementSize);
        using var pipe = WideChain.Pipeline.Build(model, mpi, new PipelineOptions { PrintPlan = false });
        long before = ResidentBytes();
        long released = pipe.ReleaseOtherStages(model);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long after = ResidentBytes();
        long kept = pipe.Parameters().Sum(p => p.NumberOfElements * p.ElementSize);
        var loss = pipe.Step(randn(8, 2048), randn(8, 2048), (o, t) => nn.functional.mse_loss(o, t, nn.Reduction.Sum));
        Console.WriteLine($"[rank {mpi.Rank}] model {modelBytes} bytes, kept {kept}, released {released}; " +
                          $"resident {before / (1 << 20)} MiB before release, {after / (1 << 20)} MiB after (drop {(before - after) / (1 << 20)} MiB); step loss {loss.item<float>():F1}");
        return released + kept == modelBytes && float.IsFinite(loss.item<float>());
    }

    /// <summary>VmRSS of this process, from /proc/self/status.</summary>
    private static long ResidentBytes()
    {
        var line = File.ReadAllLines("/proc/self/status").Single(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
    }
}
