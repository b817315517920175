using System;
using System.Collections.Generic;
using System.Linq;
using ParityApp;
using ParityApp.Models;
using Pippy.Runtime;
using Pippy.Runtime.Materialization;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

// mpiexec -n <stages> dotnet ParityApp.dll <scenario>
using var mpi = PipelineEnvironment.Start(ref args);
// PIPPY_CUDA_IPC_MOCK=1: Build's CUDA runtime is the mock (no GPU here), so that PIPPY_GPU_TRANSPORT=ipc runs the IPC path on CPU tensors.
if (Environment.GetEnvironmentVariable("PIPPY_CUDA_IPC_MOCK") == "1") Pippy.Runtime.Transport.CudaIpcPeers.Runtime = () => new MockCudaIpc();
string scenario = args.Length > 0 ? args[0] : "";
torch.manual_seed(42);
// PARITY_ANOMALY=1: autograd names the first backward function that returns NaN (and the forward call that made it).
if (Environment.GetEnvironmentVariable("PARITY_ANOMALY") == "1") torch.autograd.set_detect_anomaly(true);
Func<Tensor, Tensor, Tensor> mse = (o, t) => functional.mse_loss(o, t, Reduction.Sum);

bool ok = scenario switch
{
    "residual" => Parity.Check(mpi, () => new Residual(), (m, e, o) => Residual.Pipeline.Build(m, e, o),
        (m, x) => m.forward(x[0]), o => new[] { o }, new[] { randn(20, 16) }, randn(20, 8), mse, new PipelineOptions { Microbatches = 5 }),

    // A custom table that places the stages unevenly: stages 0, 1 and 2 on rank 0, stage 3 on rank 1.
    "uneven-csv" => Parity.Check(mpi, () => new Residual(), (m, e, o) => Residual.Pipeline.Build(m, e, o),
        (m, x) => m.forward(x[0]), o => new[] { o }, new[] { randn(10, 16) }, randn(10, 8), mse,
        new PipelineOptions { ScheduleCsv = "0F0,1F0,2F0,0F1,1F1,2F1,2B0,1B0,0B0,2B1,1B1,0B1\n3F0,3B0,3F1,3B1\n" }),

    // Split points of each kind: PipelineSplit.Here(), [SplitEnd], [SplitBegin] (tests/ParityApp/Models/MarkedSplits.cs).
    "marked-splits" => Parity.Check(mpi, () => new MarkedSplits(), (m, e, o) => MarkedSplits.Pipeline.Build(m, e, o),
        (m, x) => m.forward(x[0]), o => new[] { o }, new[] { randn(12, 16) }, randn(12, 8), mse, new PipelineOptions()),

    // An optional tensor argument (tests/ParityApp/Models/OptionalInput.cs), given and then null.
    // Plain arguments of forward (a flag, a count, a number, an enum) read by different stages of 4: one stage per
    // rank on 4 ranks, looped and in a V on 2.
    "plain-arguments" => (mpi.Size == 4
            ? new[] { Pippy.Schedules.ScheduleKind.GPipe, Pippy.Schedules.ScheduleKind.OneFOneB, Pippy.Schedules.ScheduleKind.InterleavedZeroBubble }
            : new[] { Pippy.Schedules.ScheduleKind.Interleaved1F1B, Pippy.Schedules.ScheduleKind.ZeroBubbleV, Pippy.Schedules.ScheduleKind.DualPipeV })
        .Select(kind => PlainArgumentsCheck.Run(mpi, kind)).ToArray().All(ok => ok),

    "optional-input" => Parity.Check(mpi, () => new OptionalInput(), (m, e, o) => OptionalInput.Pipeline.Build(m, e, o),
            (m, x) => m.forward(x[0], x[1]), o => new[] { o }, new[] { randn(8, 10), randn(8, 16) }, randn(8, 4), mse, new PipelineOptions())
        & Parity.Check(mpi, () => new OptionalInput(), (m, e, o) => OptionalInput.Pipeline.Build(m, e, o),
            (m, x) => m.forward(x[0], x[1]), o => new[] { o }, new[] { randn(8, 10), null! }, randn(8, 4), mse, new PipelineOptions()),

    "fanout" => Parity.Check(mpi, () => new FanOut(), (m, e, o) => FanOut.Pipeline.Build(m, e, o),
        (m, x) => m.forward(x[0]), o => new[] { o }, new[] { randn(9, 12) }, randn(9, 6), mse, new PipelineOptions()),

    "tokens" => Parity.Check(mpi, () => new TokensAndMasks(), (m, e, o) => TokensAndMasks.Pipeline.Build(m, e, o),
        (m, x) => m.forward(x[0]), o => new[] { o }, new[] { randint(0, 20, new long[] { 8, 5 }) }, randn(8, 4), mse, new PipelineOptions()),

    "three-inputs" => Parity.Check(mpi, () => new ThreeInputs(), (m, e, o) => ThreeInputs.Pipeline.Build(m, e, o),
        (m, x) => m.forward(x[0], x[1], x[2]), o => new[] { o.Item1, o.Item2 }, new[] { randn(6, 10), randn(6, 6), randn(6, 5) }, randn(6, 5),
        (o, t) => functional.mse_loss(o.Item1, t, Reduction.Sum) + o.Item2.sum(), new PipelineOptions { Microbatches = 3 }),

    "six-inputs" => Parity.Check(mpi, () => new SixInputs(), (m, e, o) => SixInputs.Pipeline.Build(m, e, o),
        (m, x) => m.forward(x[0], x[1], x[2], x[3], x[4], x[5]), o => new[] { o },
        new[] { randn(6, 4), randn(6, 6), randn(6, 6), randn(6, 6), randn(6, 6), randn(6, 3) }, randn(6, 3), mse, new PipelineOptions()),

    "shared" => Parity.Check(mpi, () => new SharedBlock(), (m, e, o) => SharedBlock.Pipeline.Build(m, e, o),
        (m, x) => m.forward(x[0]), o => new[] { o }, new[] { randn(8, 8) }, randn(8, 3), mse, new PipelineOptions(),
        perturbOnLaterRanks: new[] { "shared." }),

    "gpt" => Parity.Check(mpi, () => new TinyGpt(), (m, e, o) => TinyGpt.Pipeline.Build(m, e, o),
        (m, x) => m.forward(x[0]), o => new[] { o }, new[] { randint(0, 32, new long[] { 8, 8 }) }, randint(0, 32, new long[] { 8, 8 }),
        (logits, t) => functional.cross_entropy(logits.reshape(-1, 32), t.reshape(-1), reduction: Reduction.Sum), new PipelineOptions(),
        perturbOnLaterRanks: new[] { "tokens.weight" }),

    "deep" => Parity.Check(mpi, () => new DeepStack(), (m, e, o) => DeepStack.Pipeline.Build(m, e, o),
        (m, x) => m.forward(x[0]), o => new[] { o }, new[] { randn(7, 12) }, randn(7, 12), mse, new PipelineOptions()),

    // One Sequential of named children divided into 3 stages: 1F1B (the model's schedule), GPipe, and 1F1B with the
    // children balanced by measured time; the stages' parameter names are the plain model's (layers.conv1.weight).
    "sequential-cnn" => Parity.Check(mpi, () => new SequentialCnn(), (m, e, o) => SequentialCnn.Pipeline.Build(m, e, o),
            (m, x) => m.forward(x[0]), o => new[] { o }, new[] { randn(6, 3, 8, 8) }, randint(0, 10, new long[] { 6 }), CnnLoss, new PipelineOptions())
        & Parity.Check(mpi, () => new SequentialCnn(), (m, e, o) => SequentialCnn.Pipeline.Build(m, e, o),
            (m, x) => m.forward(x[0]), o => new[] { o }, new[] { randn(6, 3, 8, 8) }, randint(0, 10, new long[] { 6 }), CnnLoss,
            new PipelineOptions { Schedule = Pippy.Schedules.ScheduleKind.GPipe })
        & Parity.Check(mpi, () => new SequentialCnn(), (m, e, o) => SequentialCnn.Pipeline.Build(m, e, o),
            (m, x) => m.forward(x[0]), o => new[] { o }, new[] { randn(6, 3, 8, 8) }, randint(0, 10, new long[] { 6 }), CnnLoss,
            new PipelineOptions { Balance = Pippy.Runtime.Balancing.StageBalance.ByTime(randn(4, 3, 8, 8)) })
        & SameParameterNames(mpi, new SequentialCnn(), SequentialCnn.Pipeline.CreateStages),
    // A plain model's save file loaded into the model before Build (each rank writes the same file of its own).
    "sequential-split" => Training.Split(mpi, CnnTraining(), SavePlain(new SequentialCnn(), System.IO.Path.Combine(args[1], $"plain-{mpi.Rank}.model.bin"))),
    // Trained, saved as a pipeline checkpoint, merged back into the unchanged model's one file.
    "sequential-merge" => Training.Merge(mpi, CnnTraining(), args[1], (model, directory, output) => { SequentialCnn.Pipeline.MergeCheckpoint(model, directory, output); return true; }),

    "sequence-first" => Parity.Check(mpi, () => new SequenceFirst(), (m, e, o) => SequenceFirst.Pipeline.Build(m, e, o),
        (m, x) => m.forward(x[0], x[1]), o => new[] { o.Item1, o.Item2 }, new[] { randn(5, 6, 6), randn(6) }, randn(5, 6, 4),
        (o, t) => functional.mse_loss(o.Item1, t, Reduction.Sum), new PipelineOptions
        {
            Microbatches = 3,
            Inputs = new System.Collections.Generic.Dictionary<string, MicrobatchSpec> { ["x"] = MicrobatchSpec.Split(1), ["scale"] = MicrobatchSpec.Replicate },
            Target = MicrobatchSpec.Split(1),
            Outputs = new[] { OutputMerge.Concat(1), OutputMerge.Sum },
        }),

    // The same model divided by parameters (3 + 3 blocks) and by measured time (5 + 1): both match the plain model.
    "balance-parameters" or "balance-time" => Parity.Check(mpi, () => new UnevenCompute(), (m, e, o) => UnevenCompute.Pipeline.Build(m, e, o),
        (m, x) => m.forward(x[0]), o => new[] { o }, new[] { randn(32, 128) }, randn(32, 128), mse,
        new PipelineOptions { Balance = scenario == "balance-time" ? Pippy.Runtime.Balancing.StageBalance.ByTime(randn(16, 128)) : Pippy.Runtime.Balancing.StageBalance.ByParameters }),

    // The 4-stage 1F1B chain with a schedule chosen at start: interleaved on 2 ranks, GPipe on 4.
    "runtime-interleaved" or "runtime-gpipe" => Parity.Check(mpi, () => new OneFOneBChain(), (m, e, o) => OneFOneBChain.Pipeline.Build(m, e, o),
        (m, x) => m.forward(x[0]), o => new[] { o }, new[] { randn(14, 6) }, randn(14, 6), mse,
        scenario == "runtime-interleaved"
            ? new PipelineOptions { Schedule = Pippy.Schedules.ScheduleKind.Interleaved1F1B, StagesPerRank = 2, Microbatches = 6 }
            : new PipelineOptions { Schedule = Pippy.Schedules.ScheduleKind.GPipe }),

    // EmbeddingBag's flat tokens and offsets (and the per-bag target) divided together into whole bags by a custom spec.
    "embedding-bag" => BagParity(mpi, dataParallel: 1),

    // The corpus (docs/annotations.md, "Corpus"): each model under the schedule named by the second argument.
    // Evaluate on a model with dropout left in training mode: eval mode on every stage, then training mode back.
"mixed-precision" => ParityApp.MixedPrecisionCheck.Run(mpi, args[1], args.Length > 2 ? args[2] : ""),
    // The tied model's messages in float32 and in bf16: the same messages, half the bytes.
    "message-bytes" => MessageBytes(mpi),
    // A checkpoint with the optimizer's state sharded across 2 replicas: an unsharded optimizer is refused, a sharded one loads it.
    "sharded-checkpoint-refusal" => ShardedCheckpointRefusal(mpi, args[1]),
    // A stage that does not exist in PipelineOptions.RecomputeStages is refused at Build, naming it.
    "recompute-stages-refusal" => RecomputeStagesRefusal(mpi),
    // One rank's stages in eval mode, the others' in training mode: Step refuses on every rank.
    "mode-disagreement" => ModeDisagreement(mpi),
    "evaluate-dropout" => EvaluateWithDropout(mpi, Enum.Parse<Pippy.Schedules.ScheduleKind>(args[1])),
    "libtorch-conv-nan" => LibtorchConvCheck.Run(oneDnnOff: args.Length > 1 && args[1] == "onednn-off"),
    _ when scenario.StartsWith("corpus-", StringComparison.Ordinal) => CorpusParity(mpi, scenario["corpus-".Length..], Enum.Parse<Pippy.Schedules.ScheduleKind>(args[1])),
    "embedding-bag-dp" => BagParity(mpi, dataParallel: 2),

    "transposed" => Parity.Check(mpi, () => new Transposed(), (m, e, o) => Transposed.Pipeline.Build(m, e, o),
        (m, x) => m.forward(x[0]), o => new[] { o }, new[] { randn(8, 6) }, randn(8, 3), mse, new PipelineOptions()),

    // using var locals crossing splits, a dispose scope opened in forward and a padding mask: outputs, loss and grads.
    "using" => Parity.Check(mpi, () => new UsingEncoder(), (m, e, o) => UsingEncoder.Pipeline.Build(m, e, o),
        (m, x) => m.forward(x[0], x[1]), o => new[] { o }, new[] { randn(8, 6, 12), Memory.Padding(8, 6) }, randn(8, 3), mse, new PipelineOptions()),
    "using-memory" => Memory.UsingSteps(mpi, Int(args, 1)),

    "nested" => Parity.Check(mpi, () => new Nested(), (m, e, o) => Nested.Pipeline.Build(m, e, o),
        (m, x) => m.forward(x[0]), o => new[] { o }, new[] { randn(6, 5) }, randn(6, 3), mse, new PipelineOptions()),

    // forward calls Encode/Reparameterize/Decode and names no submodule: the stages hold what those methods use.
    "vae" => Parity.Check(mpi, () => new Vae(), (m, e, o) => Vae.Pipeline.Build(m, e, o),
        (m, x) => m.forward(x[0], x[1]), o => new[] { o.Item1, o.Item2, o.Item3 }, new[] { rand(8, 12), randn(8, 4) }, rand(8, 12),
        (o, t) => functional.binary_cross_entropy(o.Item1, t, reduction: Reduction.Sum) - 0.5 * (1 + o.Item3 - o.Item2.pow(2) - o.Item3.exp()).sum(),
        new PipelineOptions(), perturbOnLaterRanks: new[] { "norm." })
        & EveryParameterInAStage(mpi, new Vae(), Vae.Pipeline.CreateStages),

    "1f1b" => Chain(mpi, () => new OneFOneBChain(), (m, e, o) => OneFOneBChain.Pipeline.Build(m, e, o)),
    "1f1b-more-microbatches" => Chain(mpi, () => new OneFOneBChain(), (m, e, o) => OneFOneBChain.Pipeline.Build(m, e, o), microbatches: 7),
    "interleaved-1f1b" => Chain(mpi, () => new InterleavedChain(), (m, e, o) => InterleavedChain.Pipeline.Build(m, e, o)),
    "looped-bfs" => Chain(mpi, () => new LoopedBfsChain(), (m, e, o) => LoopedBfsChain.Pipeline.Build(m, e, o)),
    "zero-bubble" => Chain(mpi, () => new ZeroBubbleChain(), (m, e, o) => ZeroBubbleChain.Pipeline.Build(m, e, o)),
    "interleaved-zero-bubble" => Chain(mpi, () => new InterleavedZeroBubbleChain(), (m, e, o) => InterleavedZeroBubbleChain.Pipeline.Build(m, e, o)),
    "dual-pipe-v" => Chain(mpi, () => new DualPipeVChain(), (m, e, o) => DualPipeVChain.Pipeline.Build(m, e, o)),
    "1f1b-2" => Chain(mpi, () => new OneFOneBOnTwo(), (m, e, o) => OneFOneBOnTwo.Pipeline.Build(m, e, o)),
    "interleaved-1f1b-2" => Chain(mpi, () => new InterleavedOnTwo(), (m, e, o) => InterleavedOnTwo.Pipeline.Build(m, e, o)),
    // Interleaved 1F1B with microbatch counts that are no multiple of the rank count (the table computed at start):
    // on 2 ranks one round of 3, then rounds of 3 and 2; on 4 ranks one round of 6, and 3 (fewer than the ranks).
    "interleaved-uneven-2" => Chain(mpi, () => new InterleavedOnTwo(), (m, e, o) => InterleavedOnTwo.Pipeline.Build(m, e, o), microbatches: 3)
        & Chain(mpi, () => new InterleavedOnTwo(), (m, e, o) => InterleavedOnTwo.Pipeline.Build(m, e, o), microbatches: 5),
    "interleaved-uneven-4" => Chain(mpi, () => new InterleavedChain(), (m, e, o) => InterleavedChain.Pipeline.Build(m, e, o), microbatches: 6)
        & Chain(mpi, () => new InterleavedChain(), (m, e, o) => InterleavedChain.Pipeline.Build(m, e, o), microbatches: 3),
    "looped-bfs-4" => Chain(mpi, () => new LoopedBfsOnFour(), (m, e, o) => LoopedBfsOnFour.Pipeline.Build(m, e, o)),
    "zero-bubble-2" => Chain(mpi, () => new ZeroBubbleOnTwo(), (m, e, o) => ZeroBubbleOnTwo.Pipeline.Build(m, e, o)),
    "interleaved-zero-bubble-4" => Chain(mpi, () => new InterleavedZeroBubbleOnFour(), (m, e, o) => InterleavedZeroBubbleOnFour.Pipeline.Build(m, e, o)),
    "zero-bubble-v-2" => Chain(mpi, () => new ZeroBubbleVOnTwo(), (m, e, o) => ZeroBubbleVOnTwo.Pipeline.Build(m, e, o)),
    "dual-pipe-v-2" => Chain(mpi, () => new DualPipeVOnTwo(), (m, e, o) => DualPipeVOnTwo.Pipeline.Build(m, e, o)),
    "custom-csv" => Chain(mpi, () => new CustomChain(), (m, e, o) => CustomChain.Pipeline.Build(m, e, o)),
    "zero-bubble-v" => Chain(mpi, () => new ZeroBubbleVChain(), (m, e, o) => ZeroBubbleVChain.Pipeline.Build(m, e, o)),

    "train-sgd" => Training.CheckAgainstPlain(mpi, GptTraining(p => optim.SGD(p, 0.05, momentum: 0.9)), steps: 3),
    "train-adamw" => Training.CheckAgainstPlain(mpi, GptTraining(p => optim.AdamW(p, 0.01), schedule: true), steps: 3),
    "train-clip" => Training.CheckAgainstPlain(mpi, GptTraining(p => optim.SGD(p, 0.05, momentum: 0.9), clip: 0.5), steps: 3),
    "train-mean" => Training.CheckAgainstPlain(mpi, GptTraining(p => optim.SGD(p, 0.1), mean: true), steps: 2),
    "train-dp-sgd" => Training.CheckAgainstPlain(mpi, GptTwoStagesTraining(p => optim.SGD(p, 0.05, momentum: 0.9)), steps: 3),
    "train-dp-adamw" => Training.CheckAgainstPlain(mpi, GptTwoStagesTraining(p => optim.AdamW(p, 0.01), clip: 0.5), steps: 3),
    // Mean-reduced loss with SGD: AdamW is not compared at rtol 1e-5 here, since with gradients 80x smaller some sit
    // near its eps (1e-8), where it turns float rounding of the gradient into visible update differences.
    "train-dp-mean" => Training.CheckAgainstPlain(mpi, GptTwoStagesTraining(p => optim.SGD(p, 0.05, momentum: 0.9), clip: 0.5, mean: true), steps: 3),
    // The parity grid: every feature x schedule and placement x mode whose rank count is this job's size.
    "grid" => ParityApp.Grid.ParityGrid.Run(mpi, args[1], args.Length > 2 ? args[2] : ""),
    "split" => Training.Split(mpi, GptTraining(p => optim.AdamW(p, 0.01)), args[1]),
    // Built on the meta device: each rank materializes only its stages (seeded layer defaults, a model file, a checkpoint).
    "train-lazy" => Training.CheckAgainstPlain(mpi, GptTraining(p => optim.SGD(p, 0.05, momentum: 0.9), clip: 0.5, lazy: true), steps: 3),
    "train-dp-lazy" => Training.CheckAgainstPlain(mpi, GptTwoStagesTraining(p => optim.SGD(p, 0.05, momentum: 0.9), clip: 0.5, lazy: true), steps: 3),
    "split-lazy" => Training.Split(mpi, GptTraining(p => optim.AdamW(p, 0.01), lazy: true), args[1]),
    "memory" => Memory.Measure(mpi),
    "fail" => Reliability.Run(mpi, args[1]),
    "load-other" => Training.LoadOther(mpi, args[1]),
    "checkpoint-layout" => Training.Layout(mpi, args[1], args[2], args[3]),
    "learned-shapes" => LearnedShapes.Steps(mpi),
    "threads" => Threads(mpi),
    "shared-slots" => SharedSlotsCheck.Run(mpi),
    "cuda-ipc-mock" => CudaIpcMockCheck.Run(mpi),
    "shape-by-data" => LearnedShapes.DataDependent(mpi, learn: args.Length < 2 || args[1] != "headers"),
    "memory-peak" => Memory.Peak(mpi, args[1]),
    "resume" or "resume-lazy" => Training.Resume(mpi, GptTraining(p => optim.AdamW(p, 0.01), clip: 1.0, lazy: scenario == "resume-lazy"), Int(args, 1), Int(args, 2),
        args.Length > 3 && args[3] != "-" ? args[3] : null, args.Length > 4 && args[4] != "-" ? args[4] : null),
    "load-damaged" => Training.LoadDamaged(mpi, GptTraining(p => optim.AdamW(p, 0.01), clip: 1.0), args[1], args[2], TinyGpt.Pipeline.MergeCheckpoint),
    "merge" => Training.Merge(mpi, GptTraining(p => optim.AdamW(p, 0.01)), args[1], (model, directory, output) => { TinyGpt.Pipeline.MergeCheckpoint(model, directory, output); return true; }),

    _ => throw new ArgumentException($"unknown scenario '{scenario}'"),
};

bool all = mpi.AllTrue(ok);

// How many threads torch uses on this rank (PipelineEnvironment.Start divides the cores among a machine's ranks).
static bool Threads(PipelineEnvironment mpi)
{
    Console.WriteLine($"[rank {mpi.Rank}] torch threads {torch.get_num_threads()} of {Environment.ProcessorCount} cores");
    return true;
}

// The stages together hold every parameter of the model, so an optimizer over all ranks' pipe.Parameters() trains them all.
static bool EveryParameterInAStage<TModel>(PipelineEnvironment mpi, TModel model, Func<TModel, PipelineStage[]> stages) where TModel : Module
{
    var held = stages(model).SelectMany(s => s.named_parameters()).Select(p => p.name).ToHashSet();
    var missing = model.named_parameters().Select(p => p.name).Where(n => !held.Contains(n)).ToArray();
    Console.WriteLine($"[rank {mpi.Rank}] parameters held by the stages: {held.Count} of {held.Count + missing.Length}{(missing.Length == 0 ? " ok" : ", MISSING " + string.Join(", ", missing))}");
    return missing.Length == 0;
}

static Tensor CnnLoss(Tensor logits, Tensor target) => functional.cross_entropy(logits, target, reduction: Reduction.Sum);

// The VGG-style Sequential CNN on 3 stages, trained on batches that depend only on the step number.
static Training.Setup<SequentialCnn> CnnTraining() =>
    new(() => new SequentialCnn(), (m, e, o) => SequentialCnn.Pipeline.Build(m, e, o), p => optim.SGD(p, 0.05, momentum: 0.9),
        step => { var g = new Generator(3000 + (ulong)step); return (randn(new long[] { 6, 3, 8, 8 }, generator: g), randint(0, 10, new long[] { 6 }, generator: g)); },
        CnnLoss, new PipelineOptions { PrintPlan = false });

static string SavePlain(Module model, string path)
{
    System.IO.Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
    model.save(path);
    return path;
}

// Every parameter and buffer name of this rank's stages' state_dict is the plain model's, and the stages hold all of them.
static bool SameParameterNames<TModel>(PipelineEnvironment mpi, TModel model, Func<TModel, PipelineStage[]> stages) where TModel : Module
{
    var plain = model.state_dict().Keys.ToHashSet();
    var all = stages(model);
    var mine = all.Where(s => s.Index == mpi.Rank).SelectMany(s => s.state_dict().Keys).ToArray();
    var foreign = mine.Where(n => !plain.Contains(n)).ToArray();
    var missing = plain.Where(n => !all.SelectMany(s => s.state_dict().Keys).Contains(n)).ToArray();
    bool ok = foreign.Length == 0 && missing.Length == 0 && mine.Length > 0;
    Console.WriteLine($"[rank {mpi.Rank}] stage {mpi.Rank} state_dict: {string.Join(", ", mine)}{(foreign.Length == 0 ? "" : "; NOT IN THE PLAIN MODEL " + string.Join(", ", foreign))}{(missing.Length == 0 ? "" : "; HELD BY NO STAGE " + string.Join(", ", missing))} {(ok ? "ok" : "MISMATCH")}");
    return ok;
}

static int Int(string[] args, int index) => int.Parse(args[index], System.Globalization.CultureInfo.InvariantCulture);

// The tied GPT on 4 stages, trained on batches that depend only on the step number.
static Training.Setup<TinyGpt> GptTraining(Func<IEnumerable<TorchSharp.Modules.Parameter>, TorchSharp.Modules.OptimizerHelper> optimizer, double? clip = null, bool schedule = false, bool mean = false, bool lazy = false) =>
    new(() => new TinyGpt(), (m, e, o) => TinyGpt.Pipeline.Build(m, e, o), optimizer,
        step => { var g = new Generator(1000 + (ulong)step); return (randint(0, 32, new long[] { 10, 8 }, generator: g), randint(0, 32, new long[] { 10, 8 }, generator: g)); },
        (logits, t) => functional.cross_entropy(logits.reshape(-1, 32), t.reshape(-1), reduction: mean ? Reduction.Mean : Reduction.Sum),
        new PipelineOptions { LossReduction = mean ? LossReduction.Mean : LossReduction.Sum, PrintPlan = false, Initialization = lazy ? WeightInitialization.Seeded(7) : null },
        clip, schedule);

// The two-stage tied GPT, 2 data-parallel replicas x 2 pipeline ranks.
static Training.Setup<TinyGptTwoStages> GptTwoStagesTraining(Func<IEnumerable<TorchSharp.Modules.Parameter>, TorchSharp.Modules.OptimizerHelper> optimizer, double? clip = null, bool mean = false, bool lazy = false) =>
    new(() => new TinyGptTwoStages(), (m, e, o) => TinyGptTwoStages.Pipeline.Build(m, e, o), optimizer,
        step => { var g = new Generator(2000 + (ulong)step); return (randint(0, 32, new long[] { 10, 8 }, generator: g), randint(0, 32, new long[] { 10, 8 }, generator: g)); },
        (logits, t) => functional.cross_entropy(logits.reshape(-1, 32), t.reshape(-1), reduction: mean ? Reduction.Mean : Reduction.Sum),
        new PipelineOptions { DataParallel = 2, LossReduction = mean ? LossReduction.Mean : LossReduction.Sum, Initialization = lazy ? WeightInitialization.Seeded(7) : null },
        clip);

static bool Chain<TModel>(PipelineEnvironment mpi, Func<TModel> create, Func<TModel, PipelineEnvironment, PipelineOptions, PipelineRunner<Tensor>> build, int? microbatches = null)
    where TModel : Module<Tensor, Tensor> =>
    Parity.Check(mpi, create, build, (m, x) => m.forward(x[0]), o => new[] { o }, new[] { randn(14, 6) }, randn(14, 6),
        (o, t) => functional.mse_loss(o, t, Reduction.Sum), new PipelineOptions { Microbatches = microbatches });
if (mpi.Rank == 0) Console.WriteLine(all ? $"PASS {scenario}" : $"FAIL {scenario}");
return all ? 0 : 1;

// The EmbeddingBag classifier against the plain model: 10 bags of 1-5 tokens, divided into 4 microbatches of whole
// bags by one custom spec given to both inputs and the target. With data parallelism (2 replicas x 2 ranks), each
// replica takes its whole bags first: its output is compared with the plain model's rows of those bags, the loss and
// gradients (summed across replicas) with the plain model's.
static bool BagParity(PipelineEnvironment mpi, int dataParallel, Pippy.Schedules.ScheduleKind? schedule = null)
{
    var lengths = new long[] { 3, 1, 4, 2, 5, 2, 3, 1, 2, 4 };
    var tokens = randint(0, 30, new[] { lengths.Sum() });
    var offsets = tensor(lengths.Select((_, i) => lengths.Take(i).Sum()).ToArray());
    var labels = randint(0, 4, new long[] { lengths.Length });
    var bags = MicrobatchSpec.Custom("whole bags", BagClassifier.WholeBags);
    var options = new PipelineOptions
    {
        DataParallel = dataParallel,
        Schedule = schedule,
        Inputs = new Dictionary<string, MicrobatchSpec> { ["tokens"] = bags, ["offsets"] = bags },
        Target = bags,
    };
    Func<Tensor, Tensor, Tensor> loss = (logits, t) => functional.cross_entropy(logits, t, reduction: Reduction.Sum);
    if (dataParallel == 1)
        return Parity.Check(mpi, () => new BagClassifier(), (m, e, o) => BagClassifier.Pipeline.Build(m, e, o),
            (m, x) => m.forward(x[0], x[1]), o => new[] { o }, new[] { tokens, offsets }, labels, loss, options);

    torch.manual_seed(0);
    using var pipe = BagClassifier.Pipeline.Build(new BagClassifier(), mpi, options);
    var output = pipe.Forward(tokens, offsets);
    var pipelineLoss = pipe.Step(new[] { tokens, offsets }, labels, loss);
    torch.manual_seed(0);
    var reference = new BagClassifier();
    var referenceOutput = reference.forward(tokens, offsets);
    var referenceLoss = loss(referenceOutput, labels);
    referenceLoss.backward();
    string who = $"[rank {mpi.Rank} replica {pipe.DataParallelRank} stage {pipe.Stage.Index}]";
    bool ok = Parity.Compare(who, "loss", pipelineLoss, referenceLoss.detach());
    if (pipe.IsLastStage)
    {
        var share = BagClassifier.WholeBags(new[] { tokens, offsets, referenceOutput.detach() }, dataParallel)[pipe.DataParallelRank][2];
        ok &= Parity.Compare(who, "output (this replica's bags)", output!, share);
    }
    var referenceParameters = Parity.AllParameters(reference);
    foreach (var (name, parameter) in pipe.Stages.SelectMany(s => s.named_parameters()))
        ok &= Parity.Compare(who, $"grad {name}", parameter.grad!, referenceParameters[name].grad!);
    Console.WriteLine($"{who} checked {pipe.Stages.Sum(s => s.named_parameters().Count())} gradients");
    return ok;
}

static bool RecomputeStagesRefusal(PipelineEnvironment mpi)
{
    try
    {
        using var pipe = ParityApp.Grid.GridChain.Pipeline.Build(new ParityApp.Grid.GridChain(), mpi, new PipelineOptions { RecomputeStages = new[] { 1, 7 }, PrintPlan = false });
        Console.WriteLine("FAIL recompute-stages-refusal: Build accepted stage 7");
        return false;
    }
    catch (ArgumentException e)
    {
        if (mpi.Rank == 0) Console.WriteLine($"REFUSED: {e.Message}");
        return true;
    }
}

static bool MessageBytes(PipelineEnvironment mpi)
{
    var x = randint(0, 12, new long[] { 8, 5 });
    var y = randn(8, 12);
    (long Messages, long Bytes) Sent(ScalarType dtype)
    {
        manual_seed(0);
        var model = new ParityApp.Grid.GridTied();
        model.to(dtype);
        using var pipe = ParityApp.Grid.GridTied.Pipeline.Build(model, mpi, new PipelineOptions { PrintPlan = false });
        // The second step: the first also sends shape headers.
        for (int i = 0; i < 2; i++) pipe.Step(x, y, (o, t) => functional.mse_loss(o.to_type(ScalarType.Float32), t, Reduction.Sum));
        var last = pipe.LastStep;
        return ((long)mpi.Sum(last.MessagesViaSharedMemory + last.MessagesViaMpi), (long)mpi.Sum(last.BytesViaSharedMemory + last.BytesViaMpi));
    }
    var single = Sent(ScalarType.Float32);
    var half = Sent(ScalarType.BFloat16);
    bool ok = single.Messages > 0 && half.Messages == single.Messages && 2 * half.Bytes == single.Bytes;
    if (mpi.Rank == 0)
        Console.WriteLine($"{(ok ? "PASS" : "FAIL")} message-bytes: float32 {single.Messages} messages, {single.Bytes:N0} bytes; bf16 {half.Messages} messages, {half.Bytes:N0} bytes");
    return mpi.AllTrue(ok);
}

static bool ShardedCheckpointRefusal(PipelineEnvironment mpi, string directory)
{
    var options = new PipelineOptions { Schedule = Pippy.Schedules.ScheduleKind.Interleaved1F1B, StagesPerRank = 2, DataParallel = 2, PrintPlan = false };
    Func<Tensor, Tensor, Tensor> loss = (o, t) => functional.mse_loss(o, t);
    using (var pipe = ParityApp.Grid.GridChain.Pipeline.Build(new ParityApp.Grid.GridChain(), mpi, options))
    {
        var shard = pipe.ShardOptimizerState();
        var optimizer = TorchSharp.torch.optim.AdamW(shard.Parameters, 0.01);
        pipe.Step(randn(8, 6), randn(8, 4), loss);
        optimizer.step();
        shard.Gather();
        pipe.SaveCheckpoint(directory, optimizer, 1);
    }
    var index = Pippy.Runtime.Checkpoints.PipelineCheckpoint.ReadIndex(directory);
    if (mpi.Rank == 0) Console.WriteLine($"SAVED {index.Shards.Count} shards, {index.OptimizerShards?.Count ?? 0} optimizer shares: {string.Join(", ", index.OptimizerShards?.Select(s => s.File) ?? Array.Empty<string>())}");
    using var unsharded = ParityApp.Grid.GridChain.Pipeline.Build(new ParityApp.Grid.GridChain(), mpi, options);
    bool refused = false;
    try
    {
        unsharded.LoadCheckpoint(directory, TorchSharp.torch.optim.AdamW(unsharded.Parameters(), 0.01));
    }
    catch (InvalidOperationException e)
    {
        refused = true;
        if (mpi.Rank == 0) Console.WriteLine($"REFUSED: {e.Message}");
    }
    // The same pipeline with its optimizer's state sharded as it was saved loads it.
    long step = unsharded.LoadCheckpoint(directory, TorchSharp.torch.optim.AdamW(unsharded.ShardOptimizerState().Parameters, 0.01));
    bool all = mpi.AllTrue(refused && step == 1);
    if (mpi.Rank == 0) Console.WriteLine(all ? "PASS sharded-checkpoint-refusal" : "FAIL sharded-checkpoint-refusal");
    return all;
}

static bool ModeDisagreement(PipelineEnvironment mpi)
{
    using var pipe = ParityApp.Grid.GridChain.Pipeline.Build(new ParityApp.Grid.GridChain(), mpi, new PipelineOptions { PrintPlan = false });
    if (mpi.Rank == 1) foreach (var stage in pipe.Stages) stage.eval();
    bool refused = false;
    try
    {
        pipe.Step(randn(8, 6), randn(8, 4), (o, t) => functional.mse_loss(o, t));
    }
    catch (InvalidOperationException e) when (e.Message.StartsWith("The ranks of the pipeline disagree on training mode", StringComparison.Ordinal))
    {
        refused = true;
        if (mpi.Rank == 0) Console.WriteLine($"REFUSED: {e.Message}");
    }
    bool all = mpi.AllTrue(refused);
    if (mpi.Rank == 0) Console.WriteLine(all ? "PASS mode-disagreement" : "FAIL mode-disagreement");
    return all;
}

// Evaluate: the corpus LSTM (dropout 0.2) built and left in training mode. Evaluate must switch every stage to eval
// mode (dropout off: the plain model's eval loss and outputs), put training mode back, and leave the gradients alone.
static bool EvaluateWithDropout(PipelineEnvironment mpi, Pippy.Schedules.ScheduleKind schedule)
{
    manual_seed(0);
    var model = new CorpusLstmLm();
    manual_seed(0);
    var plain = new CorpusLstmLm();
    using var pipe = CorpusLstmLm.Pipeline.Build(model, mpi, new PipelineOptions { Schedule = schedule, PrintPlan = false, LossReduction = LossReduction.Mean });
    manual_seed(5);
    var x = randint(0, 24, new long[] { 8, 6 });
    var y = randint(0, 24, new long[] { 8, 6 });
    Func<Tensor, Tensor, Tensor> loss = (logits, t) => functional.cross_entropy(logits.reshape(-1, 24), t.reshape(-1));
    var first = pipe.Evaluate(new[] { x }, y, loss, out var output);
    var second = pipe.Evaluate(x, y, loss);
    plain.eval();
    Tensor expectedOutput, expected;
    using (no_grad()) { expectedOutput = plain.forward(x); expected = loss(expectedOutput, y); }
    bool ok = true;
    void Check(string what, bool passed) { if (!passed) { ok = false; Console.WriteLine($"[rank {mpi.Rank}] MISMATCH {what}"); } }
    Check($"loss {first.item<float>()} against the plain model's {expected.item<float>()} in eval mode", allclose(first, expected, rtol: 1e-5, atol: 1e-6));
    Check("a second Evaluate gave another loss (dropout on?)", first.item<float>() == second.item<float>());
    if (pipe.IsLastStage) Check("outputs", output is not null && allclose(output, expectedOutput, rtol: 1e-5, atol: 1e-6));
    else Check("outputs on a rank without the last stage", output is null);
    Check("a stage left in eval mode", pipe.Stages.All(s => s.training));
    Check("a gradient after Evaluate", pipe.Parameters().All(p => p.grad is null));
    bool all = mpi.AllTrue(ok);
    if (mpi.Rank == 0) Console.WriteLine(all ? $"PASS evaluate-dropout {schedule}: loss {first.item<float>():F5} equals the plain model's in eval mode" : "FAIL evaluate-dropout");
    return all;
}

// The corpus: models as their users write them, annotated minimally, each checked against the plain model (outputs,
// loss, every gradient; same seed) under the schedule chosen at run time (PipelineOptions.Schedule, one stage per
// rank: GPipe, OneFOneB, InterleavedZeroBubble = ZB-H1). Ranks = the model's stage count.
static bool CorpusParity(PipelineEnvironment mpi, string model, Pippy.Schedules.ScheduleKind schedule)
{
    var options = new PipelineOptions { Schedule = schedule };
    Func<Tensor, Tensor, Tensor> classes = (logits, t) => functional.cross_entropy(logits, t, reduction: Reduction.Sum);
    Func<Tensor, Tensor, Tensor> mse = (o, t) => functional.mse_loss(o, t, Reduction.Sum);
    switch (model)
    {
        case "resnet":
            return Parity.Check(mpi, () => new CorpusResNet(), (m, e, o) => CorpusResNet.Pipeline.Build(m, e, o),
                (m, x) => m.forward(x[0]), o => new[] { o }, new[] { randn(8, 3, 8, 8) }, randint(0, 10, new long[] { 8 }), classes, options);

        case "mobilenet":
            return Parity.Check(mpi, () => new CorpusMobileNet(), (m, e, o) => CorpusMobileNet.Pipeline.Build(m, e, o),
                (m, x) => m.forward(x[0]), o => new[] { o }, new[] { randn(8, 3, 16, 16) }, randint(0, 5, new long[] { 8 }), classes, options);

        case "lstm":
            // Dropout p = 0.2 as written, both models in eval mode: dropout is then the identity in both (its masks
            // are drawn per rank and microbatch in a pipeline, so training-mode dropout cannot match bit for bit).
            return Parity.Check(mpi, () => { var m = new CorpusLstmLm(); m.eval(); return m; }, (m, e, o) => CorpusLstmLm.Pipeline.Build(m, e, o),
                (m, x) => m.forward(x[0]), o => new[] { o }, new[] { randint(0, 24, new long[] { 8, 6 }) }, randint(0, 24, new long[] { 8, 6 }),
                (logits, t) => functional.cross_entropy(logits.reshape(-1, 24), t.reshape(-1), reduction: Reduction.Sum), options);

        case "bert":
        {
            var lengths = new long[] { 7, 5, 6, 3, 7, 4, 2, 6 };
            var ids = randint(0, 40, new long[] { 8, 7 });
            var tokenTypes = cat(new[] { zeros(8, 3, ScalarType.Int64), ones(8, 4, ScalarType.Int64) }, 1);
            var attention = stack(lengths.Select(n => (arange(7L) < n).to_type(ScalarType.Int64)).ToArray());
            var positions = arange(7L).unsqueeze(0).repeat(8, 1);
            return Parity.Check(mpi, () => new CorpusBert(), (m, e, o) => CorpusBert.Pipeline.Build(m, e, o),
                (m, x) => m.forward(x[0], x[1], x[2], x[3]), o => new[] { o }, new[] { ids, tokenTypes, attention, positions },
                randint(0, 3, new long[] { 8 }), classes, options,
                // The key projection's bias has a zero gradient in exact arithmetic (softmax is unchanged by a constant
                // added to a query's scores); in float both sides hold rounding noise near 1e-9, different per batch size.
                absoluteTolerance: 1e-7);
        }

        // The models the corpus shares with DslParityTests, under each schedule too.
        case "vae":
            return Parity.Check(mpi, () => new Vae(), (m, e, o) => Vae.Pipeline.Build(m, e, o),
                (m, x) => m.forward(x[0], x[1]), o => new[] { o.Item1, o.Item2, o.Item3 }, new[] { rand(8, 12), randn(8, 4) }, rand(8, 12),
                (o, t) => functional.binary_cross_entropy(o.Item1, t, reduction: Reduction.Sum) - 0.5 * (1 + o.Item3 - o.Item2.pow(2) - o.Item3.exp()).sum(),
                options);

        case "using-encoder":
            return Parity.Check(mpi, () => new UsingEncoder(), (m, e, o) => UsingEncoder.Pipeline.Build(m, e, o),
                (m, x) => m.forward(x[0], x[1]), o => new[] { o }, new[] { randn(8, 6, 12), Memory.Padding(8, 6) }, randn(8, 3), mse, options);

        case "embedding-bag":
            return BagParity(mpi, dataParallel: 1, schedule);

        default:
            throw new ArgumentException($"unknown corpus model '{model}'");
    }
}
