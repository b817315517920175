using System;
using System.Diagnostics;
using System.Linq;
using Gpt;
using Pippy.Runtime;
using Pippy.Runtime.Transport;
using Pippy.Schedules;
using TorchSharp;
using static TorchSharp.torch;

namespace GpuCheck;

/// <summary>
/// The GPT sample's model (samples/Gpt/CharGpt.cs, linked) on the ranks sharing the GPU: 4 stages, 1 per rank on 4
/// ranks and 2 per rank (interleaved 1F1B) on 2. Parity: 3 Steps without an optimizer step (the first learns the
/// messages' shapes through host staging; the next go the chosen path, CUDA IPC where the ranks share a machine), each
/// against the model in one process on the same GPU, loss and every gradient (<see cref="GpuParity"/>). Then the
/// step time of a larger GPT through CUDA IPC against host staging.
/// </summary>
public static class GptCheck
{
    private const int Vocabulary = 65;

    public static bool Parity(PipelineEnvironment mpi, Device device)
    {
        const int batch = 16, context = 32;
        var model = Create(device, seed: 3, width: 128, depth: 4, context);
        var reference = Create(device, seed: 3, width: 128, depth: 4, context);
        var (input, target) = Batch(batch, context, seed: 5, device);
        var loss = CrossEntropy();
        var referenceLoss = loss(reference.forward(input), target);
        referenceLoss.backward();
        var referenceGradients = GpuParity.Gradients(reference);
        bool ok = true;
        using var pipe = Build(mpi, model, printPlan: false);
        for (int step = 1; step <= 3; step++)
        {
            foreach (var p in pipe.Parameters()) p.grad?.zero_();
            double value = pipe.Step(input, target, loss).item<float>();
            bool lossOk = GpuParity.LossMatches(value, referenceLoss.item<float>());
            var mismatched = GpuParity.Mismatched(pipe, referenceGradients, device);
            var last = pipe.LastStep;
            Console.WriteLine($"[rank {mpi.Rank}] GPT on {mpi.Size} ranks, step {step}: loss {(lossOk ? "ok" : $"MISMATCH ({value} against {referenceLoss.item<float>()})")}, " +
                              $"gradients {(mismatched.Length == 0 ? "ok" : "MISMATCH: " + string.Join(", ", mismatched.Take(6)))}; " +
                              $"messages via CUDA IPC {last.MessagesViaCudaIpc}, via MPI {last.MessagesViaMpi}, via shared memory {last.MessagesViaSharedMemory}");
            ok &= lossOk && mismatched.Length == 0;
        }
        return ok;
    }

    /// <summary>Mean step time (after 2 warm-up steps) of a larger GPT through each path; every rank synchronizes its device around each step.</summary>
    public static void StepTimes(PipelineEnvironment mpi, Device device, bool onCpu, bool ipcRuns)
    {
        const int batch = 32, context = 64, steps = 8;
        string? before = Environment.GetEnvironmentVariable(GpuTransportChoice.Variable);
        var times = new System.Collections.Generic.List<(string Path, double Ms, int ViaIpc)>();
        foreach (string path in new[] { "ipc", "host" })
        {
            if (!ipcRuns && path == "ipc") continue; // the path is for CUDA tensors (or the dry run's mock)
            // Read at Build, by every rank alike. The dry run's CPU tensors would take shared memory before IPC.
            Environment.SetEnvironmentVariable(GpuTransportChoice.Variable, path);
            if (onCpu) Environment.SetEnvironmentVariable(PipelineRunner.SharedMemoryVariable, path == "ipc" ? "0" : null);
            var model = Create(device, seed: 4, width: 256, depth: 4, context);
            var (input, target) = Batch(batch, context, seed: 6, device);
            var loss = CrossEntropy();
            PipelineRunner<Tensor> pipe;
            try
            {
                pipe = Build(mpi, model, printPlan: false);
            }
            catch (InvalidOperationException e) when (path == "ipc")
            {
                // Refused on every rank alike (an agreed Build failure): IpcCheck has said why already.
                if (mpi.Rank == 0) Console.WriteLine($"GPT step through CUDA IPC: not measured, Build refused it: {e.Message}");
                continue;
            }
            using var disposePipe = pipe;
            double total = 0;
            for (int step = 0; step < steps + 2; step++)
            {
                foreach (var p in pipe.Parameters()) p.grad?.zero_();
                if (!onCpu) cuda.synchronize();
                var clock = Stopwatch.StartNew();
                pipe.Step(input, target, loss);
                if (!onCpu) cuda.synchronize();
                if (step >= 2) total += clock.Elapsed.TotalMilliseconds;
            }
            times.Add((path, mpi.Sum(total / steps) / mpi.Size, (int)mpi.Sum(pipe.LastStep.MessagesViaCudaIpc)));
        }
        Environment.SetEnvironmentVariable(GpuTransportChoice.Variable, before);
        if (mpi.Rank != 0) return;
        if (!ipcRuns)
        {
            Console.WriteLine($"GPT step on {mpi.Size} ranks (width 256, {batch} x {context}): host staging {times[0].Ms:F2} ms; CUDA IPC skipped (dry run on the CPU: IPC maps device memory)");
            return;
        }
        if (times.Count < 2) return;
        var ipc = times.First(t => t.Path == "ipc");
        var host = times.First(t => t.Path == "host");
        Console.WriteLine($"GPT step on {mpi.Size} ranks (width 256, {batch} x {context}): CUDA IPC {ipc.Ms:F2} ms ({ipc.ViaIpc} messages via IPC in its last step), " +
                          $"host staging {host.Ms:F2} ms, host / IPC {host.Ms / ipc.Ms:F2}");
    }

    private static PipelineRunner<Tensor> Build(PipelineEnvironment mpi, CharGpt model, bool printPlan)
    {
        // 4 stages: 1 per rank on 4 ranks (1F1B), 2 per rank on 2 (interleaved 1F1B).
        bool two = mpi.Size == 2;
        return CharGpt.Pipeline.Build(model, mpi, new PipelineOptions
        {
            Schedule = two ? ScheduleKind.Interleaved1F1B : ScheduleKind.OneFOneB, StagesPerRank = two ? 2 : 1, Microbatches = 8,
            LossReduction = LossReduction.Mean, PrintPlan = printPlan, ReceiveTimeout = TimeSpan.FromMinutes(1),
        });
    }

    private static Func<Tensor, Tensor, Tensor> CrossEntropy() => (logits, t) => nn.functional.cross_entropy(logits.reshape(-1, Vocabulary), t.reshape(-1));

    /// <summary>Token ids drawn on the CPU (the same on every rank), on the device.</summary>
    private static (Tensor Input, Tensor Target) Batch(int batch, int context, int seed, Device device)
    {
        var g = new Generator((ulong)seed);
        var ids = randint(0, Vocabulary, new long[] { batch, context + 1 }, dtype: ScalarType.Int64, generator: g);
        return (ids[.., ..^1].contiguous().to(device), ids[.., 1..].contiguous().to(device));
    }

    /// <summary>
    /// The model built on <paramref name="device"/> (TorchSharp's default device, as LazyModel builds on meta: its to()
    /// cannot move the tied weight) with values drawn on the CPU from <paramref name="seed"/>: the same on every rank and
    /// for the one-process reference (manual_seed does not make CUDA's generator repeat here).
    /// </summary>
    private static CharGpt Create(Device device, int seed, int width, int depth, int context)
    {
        torch.manual_seed(seed);
        var drawn = new CharGpt(Vocabulary, context, width, heads: 4, depth);
        var previous = get_default_device();
        set_default_device(device);
        CharGpt model;
        try
        {
            model = new CharGpt(Vocabulary, context, width, heads: 4, depth);
        }
        finally
        {
            set_default_device(previous);
        }
        var target = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using (no_grad())
            foreach (var (name, value) in drawn.named_parameters()) target[name].copy_(value);
        if (target.Values.Any(p => p.device_type != device.type))
            throw new InvalidOperationException($"CharGpt was not built on {device}: {string.Join(", ", target.Where(p => p.Value.device_type != device.type).Select(p => p.Key).Take(3))}.");
        return model;
    }
}
