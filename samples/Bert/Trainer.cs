using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using Pippy.Runtime;
using Pippy.Runtime.Materialization;
using Pippy.Schedules;
using TorchSharp;
using static TorchSharp.torch;

namespace Bert;

/// <summary>The training loop of the sample, and the trained model back in one process: predictions and accuracy.</summary>
public static class Trainer
{
    public sealed record Settings(string Schedule, int Microbatches, int Steps, int Batch, int Context, double LearningRate,
        string Checkpoint, int Seed, bool CheckParity, int LogEvery);

    private const double ClipNorm = 1.0;

    public static int Run(PipelineEnvironment mpi, Settings s)
    {
        var sentences = Sentences.Load(s.Context);
        int vocabulary = sentences.Vocabulary;
        var kind = s.Schedule.ToLowerInvariant() switch
        {
            "gpipe" => ScheduleKind.GPipe,
            "1f1b" => ScheduleKind.OneFOneB,
            "interleaved" => ScheduleKind.Interleaved1F1B,
            "zero-bubble" => ScheduleKind.InterleavedZeroBubble,
            "looped-bfs" => ScheduleKind.LoopedBFS,
            _ => throw new ArgumentException($"--schedule {s.Schedule}: use gpipe, 1f1b, interleaved, zero-bubble or looped-bfs."),
        };
        // 4 stages: 1 per rank on 4 ranks, 2 per rank on 2 (the looped schedules).
        int stagesPerRank = Math.Max(1, CharBert.Pipeline.StageCount / Math.Max(1, mpi.Size));
        if (mpi.Rank == 0)
        {
            double meanLength = sentences.Training.Average(t => t.Length);
            Console.WriteLine($"text: {sentences.Source}, {sentences.Training.Length:N0} training and {sentences.HeldOut.Length:N0} held-out sentences " +
                              $"of {ShortestLength(sentences)}-{s.Context} characters (mean {meanLength:F1}: {1 - meanLength / s.Context:P0} of a batch is padding), {vocabulary - 2} distinct");
        }

        // Each rank builds the model without memory and materializes only its stages, with BERT's initialization, except
        // that the learned position embedding starts as sinusoids: a masked character is known only from its
        // neighbours, and sinusoids (whose offsets are rotations) give attention relative positions to start from
        // while the loss sits on the plateau of plain character frequencies.
        var initialization = WeightInitialization.Seeded(s.Seed, (name, owner, tensor) =>
        {
            if (name == "positions.weight") { using var noGrad = no_grad(); tensor.copy_(Sinusoids(tensor.shape[0], tensor.shape[1], std: 0.02)); return true; }
            if (owner is TorchSharp.Modules.Embedding || (owner is TorchSharp.Modules.Linear && name.EndsWith(".weight", StringComparison.Ordinal))) { nn.init.normal_(tensor, std: 0.02); return true; }
            return false;
        });
        var model = LazyModel.Construct(() => new CharBert(vocabulary, s.Context));
        using var pipe = CharBert.Pipeline.Build(model, mpi, new PipelineOptions
        {
            Schedule = kind, StagesPerRank = stagesPerRank, Microbatches = s.Microbatches, Initialization = initialization,
        });
        var optimizer = optim.AdamW(pipe.Parameters(), s.LearningRate, weight_decay: 0.01);
        long parameters = (long)mpi.Sum(pipe.Parameters().Sum(p => p.NumberOfElements));
        if (mpi.Rank == 0) Console.WriteLine($"model: {parameters:N0} parameters (the tied embedding counted on both ranks that hold it), {s.Batch} sentences per step");

        // --check-parity: the plain model, whole on every rank with the same initial values, takes the same steps.
        var parity = s.CheckParity ? new ParityCheck(mpi, pipe, PlainModel(vocabulary, s.Context, initialization), s.LearningRate, ClipNorm) : null;

        double firstLoss = double.NaN, lastLoss = double.NaN;
        for (int step = 1; step <= s.Steps; step++)
        {
            var clock = Stopwatch.StartNew();
            using var scope = NewDisposeScope();
            var (ids, real) = sentences.Batch(s.Batch, step, (ulong)s.Seed);
            var (input, target) = MaskedCharacters.Corrupt(ids, real, vocabulary, (ulong)s.Seed * 7_919UL + (ulong)step);
            long chosen = MaskedCharacters.Count(target);
            Func<Tensor, Tensor, Tensor> loss = (logits, t) => MaskedCharacters.Loss(logits, t, chosen);
            optimizer.zero_grad();
            var value = pipe.Step(new[] { input, real }, target, loss);
            parity?.CompareStep(step, new[] { input, real }, target, loss, value);
            pipe.ClipGradNorm(ClipNorm);
            optimizer.step();
            parity?.StepPlainModel();

            double seconds = clock.Elapsed.TotalSeconds;
            double current = value.item<float>();
            if (step == 1) firstLoss = current;
            lastLoss = current;
            if (mpi.Rank == 0 && (step == 1 || step % s.LogEvery == 0 || step == s.Steps))
            {
                double characters = real.sum().item<float>();
                Console.WriteLine($"step {step,4}/{s.Steps}  loss {current:F3}  {chosen,4} masked of {characters,5:N0} characters  {characters / seconds,7:N0} characters/s");
            }
        }
        bool parityPassed = parity?.Report() ?? true;

        pipe.SaveCheckpoint(s.Checkpoint, optimizer, s.Steps);
        if (mpi.Rank == 0)
        {
            Console.WriteLine($"loss {firstLoss:F3} -> {lastLoss:F3} in {s.Steps} steps; checkpoint written to {s.Checkpoint}");
            // The trained model back in one process: merge the shards into one plain TorchSharp file, load it, use it.
            string merged = Path.Combine(s.Checkpoint, "model.bin");
            CharBert.Pipeline.MergeCheckpoint(new CharBert(vocabulary, s.Context), s.Checkpoint, merged);
            var trained = new CharBert(vocabulary, s.Context);
            trained.load(merged);
            Console.WriteLine($"merged into {merged} and loaded in one process");
            Evaluation.Show(trained, sentences, (ulong)s.Seed);
        }
        return parityPassed ? 0 : 1;
    }

    /// <summary>The Transformer's sinusoidal position table [positions, width], scaled to the standard deviation <paramref name="std"/>.</summary>
    private static Tensor Sinusoids(long positions, long width, double std)
    {
        var position = arange(positions, dtype: ScalarType.Float32).unsqueeze(1);
        var frequency = exp(arange(0, width, 2, dtype: ScalarType.Float32) * (-Math.Log(10_000.0) / width));
        var angles = position * frequency;                                   // [positions, width / 2]
        // sin and cos interleaved; each has a root mean square of 1/sqrt(2).
        return stack(new[] { angles.sin(), angles.cos() }, 2).reshape(positions, width) * (std * Math.Sqrt(2));
    }

    private static CharBert PlainModel(int vocabulary, int context, WeightInitialization initialization)
    {
        var plain = LazyModel.Construct(() => new CharBert(vocabulary, context));
        LazyModel.Materialize(plain, initialization);
        return plain;
    }

    private static int ShortestLength(Sentences sentences) => sentences.Training.Min(t => t.Length);
}
