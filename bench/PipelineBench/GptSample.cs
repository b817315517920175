using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using Gpt;
using Pippy.Runtime;
using Pippy.Runtime.Materialization;
using Pippy.Schedules;
using static TorchSharp.torch;

namespace PipelineBench;

/// <summary>
/// The README's first command against its model in one process (issue 18): samples/Gpt's CharGpt (8 blocks of width
/// 128 in 4 stages, head tied to the embedding), batch 16 x 64 characters, AdamW, gradient clipping, 1F1B with 8
/// microbatches. In one job, in rounds: rank 0 trains the plain model alone while the other ranks wait (their waits
/// sleep), on one torch thread and on as many as the machine has cores, then every rank trains the pipeline; each
/// figure is the median tokens/s over the round's steps after a warm-up, and the ratio is to the one-process figure
/// of the same round. Characters are random (the speed does not depend on the text).
/// </summary>
public static class GptSample
{
    private const int Batch = 16, Context = 64, Vocabulary = 64, Warmup = 5, Steps = 30, Rounds = 2;

    // GPT_SCHEDULE and GPT_MICROBATCHES try other settings than the sample's (1F1B, 8).
    private static readonly ScheduleKind Schedule = Enum.Parse<ScheduleKind>(Environment.GetEnvironmentVariable("GPT_SCHEDULE") ?? nameof(ScheduleKind.OneFOneB));
    private static readonly int Microbatches = int.Parse(Environment.GetEnvironmentVariable("GPT_MICROBATCHES") ?? "8");

    public static string Measure(PipelineEnvironment mpi)
    {
        var plainOne = new List<double>();
        var plainAll = new List<double>();
        var plainChunks = new List<double>();
        var piped = new List<double>();
        int threads = get_num_threads();
        for (int round = 0; round < Rounds; round++)
        {
            if (mpi.Rank == 0)
            {
                set_num_threads(1);
                plainOne.Add(Plain());
                plainChunks.Add(Plain(Microbatches));
                set_num_threads(Environment.ProcessorCount);
                plainAll.Add(Plain());
                set_num_threads(threads);
            }
            mpi.Barrier();
            if (mpi.Size > 1) piped.Add(Pipelined(mpi));
        }
        double chunks = mpi.Sum(plainChunks.DefaultIfEmpty().Max());
        double one = mpi.Sum(plainOne.DefaultIfEmpty().Max()), all = mpi.Sum(plainAll.DefaultIfEmpty().Max()), pipe = piped.DefaultIfEmpty().Max();
        if (mpi.Size == 1)
            return $"samples/Gpt's model in one process ({Batch} x {Context} characters per step): {one:N0} tokens/s on 1 torch thread, {all:N0} on {Environment.ProcessorCount} " +
                   $"(per round: {string.Join(" / ", plainOne.Select(v => v.ToString("N0")))} and {string.Join(" / ", plainAll.Select(v => v.ToString("N0")))})";
        return $"samples/Gpt's model, {Batch} x {Context} characters per step, {Schedule} with {Microbatches} microbatches on {mpi.Size} ranks and {Environment.ProcessorCount} cores " +
               $"(best round's median over {Steps} steps after {Warmup}, {Rounds} rounds):\n\n" +
               "| | tokens/s | pipeline / this |\n|---|---|---|\n" +
               $"| one process, 1 torch thread | {one:N0} | {pipe / one:0.00}x |\n" +
               $"| one process, {Environment.ProcessorCount} torch threads | {all:N0} | {pipe / all:0.00}x |\n" +
               $"| one process, 1 torch thread, the batch in {Microbatches} chunks (the pipeline's matrix sizes) | {chunks:N0} | {pipe / chunks:0.00}x |\n" +
               $"| the bound: that on all {Environment.ProcessorCount} cores, perfectly shared | {chunks * Environment.ProcessorCount:N0} | {pipe / (chunks * Environment.ProcessorCount):0.00}x |\n" +
               $"| pipeline, {mpi.Size} ranks | {pipe:N0} | |\n\n" +
               "Per round (tokens/s): one process on 1 thread " + string.Join(" / ", plainOne.Select(v => v.ToString("N0"))) +
               $", on {Environment.ProcessorCount} threads " + string.Join(" / ", plainAll.Select(v => v.ToString("N0"))) +
               ", pipeline " + string.Join(" / ", piped.Select(v => v.ToString("N0")));
    }

    /// <param name="chunks">Forward and backward on this many slices of the batch, gradients accumulated (1: the whole batch).</param>
    private static double Plain(int chunks = 1)
    {
        manual_seed(1);
        var model = new CharGpt(Vocabulary, Context);
        var optimizer = optim.AdamW(model.parameters(), 3e-3, weight_decay: 0.01);
        return Train(step =>
        {
            var (input, target) = Batches(step);
            optimizer.zero_grad();
            var inputs = input.tensor_split(chunks);
            var targets = target.tensor_split(chunks);
            for (int k = 0; k < chunks; k++) (Loss(model.forward(inputs[k]), targets[k]) / chunks).backward();
            nn.utils.clip_grad_norm_(model.parameters(), 1.0);
            optimizer.step();
        });
    }

    private static double Pipelined(PipelineEnvironment mpi)
    {
        var initialization = WeightInitialization.Seeded(1);
        var model = LazyModel.Construct(() => new CharGpt(Vocabulary, Context));
        using var pipe = CharGpt.Pipeline.Build(model, mpi, new PipelineOptions
        {
            Schedule = Schedule, Microbatches = Microbatches, LossReduction = LossReduction.Mean, Initialization = initialization, PrintPlan = false,
        });
        var optimizer = optim.AdamW(pipe.Parameters(), 3e-3, weight_decay: 0.01);
        double rate = Train(step =>
        {
            var (input, target) = Batches(step);
            optimizer.zero_grad();
            pipe.Step(input, target, Loss);
            pipe.ClipGradNorm(1.0);
            optimizer.step();
        });
        // The slowest rank's figure is the pipeline's: every rank's own steps end at slightly different times.
        double slowest = double.MaxValue;
        for (int r = 0; r < mpi.Size; r++) slowest = Math.Min(slowest, mpi.Sum(mpi.Rank == r ? rate : 0));
        return slowest;
    }

    private static Tensor Loss(Tensor logits, Tensor target) => nn.functional.cross_entropy(logits.reshape(-1, Vocabulary), target.reshape(-1));

    private static (Tensor Input, Tensor Target) Batches(int step)
    {
        var generator = new Generator((ulong)step);
        var ids = randint(0, Vocabulary, new long[] { Batch, Context + 1 }, generator: generator);
        return (ids[.., ..Context], ids[.., 1..]);
    }

    /// <summary>Median tokens/s over <see cref="Steps"/> steps after <see cref="Warmup"/>.</summary>
    private static double Train(Action<int> step)
    {
        var rates = new double[Steps];
        for (int i = 0; i < Warmup + Steps; i++)
        {
            using var scope = NewDisposeScope();
            var clock = Stopwatch.StartNew();
            step(i);
            if (i >= Warmup) rates[i - Warmup] = Batch * Context / clock.Elapsed.TotalSeconds;
        }
        Array.Sort(rates);
        return rates[Steps / 2];
    }
}
