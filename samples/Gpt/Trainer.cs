using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using Pippy.Runtime;
using Pippy.Runtime.Materialization;
using Pippy.Schedules;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Gpt;

/// <summary>The training loop of the sample, and sampling from the merged checkpoint.</summary>
public static class Trainer
{
    public sealed record Settings(string Schedule, int Microbatches, int DataParallel, int Steps, int Batch, int Context, double LearningRate,
        string Checkpoint, string? Trace, string? Text, int Seed, int Sample, bool Recompute = false, int EvalEvery = 100, bool BFloat16 = false,
        int Width = 128, int Depth = 8, int Heads = 4)
    {
        /// <summary>The model these settings describe (the same on every rank, and for sampling).</summary>
        public CharGpt Model(int vocabulary) => new(vocabulary, Context, Width, Heads, Depth);

        /// <summary>The learning rate of a step (1-based): a linear warmup over the first 5 % of the steps, then a cosine decay to a tenth.</summary>
        public double LearningRateAt(int step)
        {
            int warmup = Math.Max(1, Steps / 20);
            if (step <= warmup) return LearningRate * step / warmup;
            double progress = (double)(step - warmup) / Math.Max(1, Steps - warmup);
            return LearningRate * (0.1 + 0.9 * 0.5 * (1 + Math.Cos(Math.PI * progress)));
        }
    }

    /// <summary>Held-out windows per validation loss.</summary>
    private const int ValidationWindows = 64;

    public static int Run(PipelineEnvironment mpi, Settings s)
    {
        var corpus = Corpus.Load(s.Text);
        int vocabulary = corpus.Alphabet.Length;
        var kind = s.Schedule.ToLowerInvariant() switch
        {
            "gpipe" => ScheduleKind.GPipe,
            "1f1b" => ScheduleKind.OneFOneB,
            "interleaved" => ScheduleKind.Interleaved1F1B,
            "zero-bubble" => ScheduleKind.InterleavedZeroBubble,
            "looped-bfs" => ScheduleKind.LoopedBFS,
            _ => throw new ArgumentException($"--schedule {s.Schedule}: use gpipe, 1f1b, interleaved, zero-bubble or looped-bfs."),
        };
        // 4 stages over the ranks of one pipeline: 1 per rank on 4 ranks, 2 per rank on 2.
        int pipelineRanks = Math.Max(1, mpi.Size / Math.Max(1, s.DataParallel));
        int stagesPerRank = Math.Max(1, CharGpt.Pipeline.StageCount / pipelineRanks);
        if (mpi.Rank == 0)
            Console.WriteLine($"text: {corpus.Source}, {corpus.Length:N0} characters, {vocabulary} distinct");

        // Each rank builds the model without memory and materializes only its stages, with GPT's initialization.
        var initialization = WeightInitialization.Seeded(s.Seed, (name, owner, tensor) =>
        {
            if (owner is TorchSharp.Modules.Embedding || (owner is TorchSharp.Modules.Linear && name.EndsWith(".weight", StringComparison.Ordinal))) { init.normal_(tensor, std: 0.02); return true; }
            return false;
        });
        if (s.Depth < CharGpt.Pipeline.StageCount || s.Width % s.Heads != 0)
            throw new ArgumentException($"--depth {s.Depth} --width {s.Width} --heads {s.Heads}: the pipeline needs at least {CharGpt.Pipeline.StageCount} blocks, and the heads must divide the width.");
        var model = LazyModel.Construct(() => s.Model(vocabulary));
        // bf16: the stages compute, and send their messages, in bf16; the optimizer keeps float32 masters (below).
        if (s.BFloat16) model.to(ScalarType.BFloat16);
        using var pipe = CharGpt.Pipeline.Build(model, mpi, new PipelineOptions
        {
            Schedule = kind, StagesPerRank = stagesPerRank, Microbatches = s.Microbatches, DataParallel = s.DataParallel,
            LossReduction = LossReduction.Mean, Initialization = initialization, Recompute = s.Recompute,
        });
        var mixed = s.BFloat16 ? new MixedPrecision<Tensor>(pipe, LossScaling.None) : null;
        var optimizer = optim.AdamW(mixed?.MasterParameters ?? pipe.Parameters(), s.LearningRate, weight_decay: 0.01);
        long parameters = (long)mpi.Sum(pipe.DataParallelRank == 0 ? pipe.Parameters().Sum(p => p.NumberOfElements) : 0);
        if (mpi.Rank == 0) Console.WriteLine($"model: {parameters:N0} parameters in {pipe.Parameters()[0].dtype} (a tied weight counted on each rank that holds it), {s.Batch} x {s.Context} characters per step");

        double firstLoss = double.NaN, lastLoss = double.NaN;
        // The loss in float32, whatever the model computes in.
        Func<Tensor, Tensor, Tensor> crossEntropy = (logits, t) => functional.cross_entropy(logits.to_type(ScalarType.Float32).reshape(-1, vocabulary), t.reshape(-1));
        for (int step = 1; step <= s.Steps; step++)
        {
            var clock = Stopwatch.StartNew();
            using var scope = NewDisposeScope();
            var (input, target) = corpus.Batch(s.Batch, s.Context, step, (ulong)s.Seed);
            optimizer.zero_grad();
            foreach (var group in optimizer.ParamGroups) group.LearningRate = s.LearningRateAt(step);
            Tensor loss;
            if (mixed is null)
            {
                loss = pipe.Step(input, target, crossEntropy);
                pipe.ClipGradNorm(1.0);
                optimizer.step();
            }
            else
            {
                loss = mixed.Step(input, target, crossEntropy);
                if (mixed.Unscale())
                {
                    mixed.ClipGradNorm(1.0);
                    optimizer.step();
                    mixed.CopyToModel();
                }
            }
            double seconds = clock.Elapsed.TotalSeconds;
            // The measured bubble: the share of the ranks' step time spent outside torch (waiting and communicating).
            double busy = mpi.Sum(pipe.LastStep.ComputeMilliseconds), total = mpi.Sum(pipe.LastStep.RunMilliseconds);
            double value = loss.item<float>();
            if (step == 1) firstLoss = value;
            lastLoss = value;
            if (mpi.Rank == 0)
                Console.WriteLine($"step {step,4}/{s.Steps}  loss {value:F3}  {s.Batch * s.Context / seconds,8:N0} tokens/s  bubble {1 - busy / Math.Max(total, 1e-9):P0}");
            if (s.EvalEvery > 0 && step % s.EvalEvery == 0)
            {
                // The same held-out windows each time, in eval mode (no gradients; the stages go back to training after).
                var (heldOut, heldOutTarget) = corpus.Batch(ValidationWindows, s.Context, 0, (ulong)s.Seed, validation: true);
                double validation = pipe.Evaluate(heldOut, heldOutTarget, crossEntropy).item<float>();
                if (mpi.Rank == 0) Console.WriteLine($"validation loss {validation:F3} after step {step} ({ValidationWindows} held-out windows, eval mode)");
            }
            if (step == s.Steps && s.Trace is not null)
            {
                pipe.WriteTrace(s.Trace);
                if (mpi.Rank == 0) Console.WriteLine($"trace of the last step written to {s.Trace} (open it in ui.perfetto.dev)");
            }
        }
        pipe.SaveCheckpoint(s.Checkpoint, optimizer, s.Steps);
        if (mpi.Rank != 0) return 0;
        Console.WriteLine($"loss {firstLoss:F3} -> {lastLoss:F3} in {s.Steps} steps; checkpoint written to {s.Checkpoint}");

        // The trained model back in one process: merge the shards into one plain TorchSharp file, load and sample.
        string merged = Path.Combine(s.Checkpoint, "model.bin");
        var plain = s.Model(vocabulary);
        if (s.BFloat16) plain.to(ScalarType.BFloat16); // the shards hold bf16 tensors
        CharGpt.Pipeline.MergeCheckpoint(plain, s.Checkpoint, merged);
        if (s.Sample > 0) Console.WriteLine($"sampled from {merged}:\n{Sample(corpus, merged, s, (ulong)s.Seed)}");
        return 0;
    }

    /// <summary>Text generated one character at a time (temperature 0.8) by the plain model loaded from <paramref name="path"/>.</summary>
    public static string Sample(Corpus corpus, string path, Settings s, ulong seed)
    {
        int context = s.Context, length = s.Sample;
        bool bfloat16 = s.BFloat16;
        var model = s.Model(corpus.Alphabet.Length);
        // A bf16 file loads into a bf16 model; sampling then runs in float32.
        if (bfloat16) model.to(ScalarType.BFloat16);
        model.load(path);
        if (bfloat16) model.to(ScalarType.Float32);
        model.eval();
        using var noGrad = no_grad();
        var generator = new Generator(seed);
        var ids = corpus.Encode("The ").ToList();
        for (int i = 0; i < length; i++)
        {
            using var scope = NewDisposeScope();
            var window = tensor(ids.Skip(Math.Max(0, ids.Count - context)).ToArray()).unsqueeze(0);
            var logits = model.forward(window)[0, -1] / 0.8;
            ids.Add(multinomial(functional.softmax(logits, 0), 1, generator: generator).item<long>());
        }
        return corpus.Decode(ids);
    }
}
