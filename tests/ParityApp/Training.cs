using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using Pippy.Runtime;
using Pippy.Runtime.Checkpoints;
using Pippy.Runtime.Materialization;
using ParityApp.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ParityApp;

/// <summary>
/// Training on the pipeline against the plain model in one process: the same batches, optimizer and clipping, step
/// by step; the losses, the clipping norms and at the end every parameter of this rank's stages must agree.
/// </summary>
public static class Training
{
    public sealed record Setup<TModel>(
        Func<TModel> Create,
        Func<TModel, PipelineEnvironment, PipelineOptions, PipelineRunner<Tensor>> Build,
        Func<IEnumerable<Parameter>, OptimizerHelper> Optimizer,
        Func<int, (Tensor Input, Tensor Target)> Batch,
        Func<Tensor, Tensor, Tensor> Loss,
        PipelineOptions Options,
        double? ClipNorm = null,
        bool Schedule = false) where TModel : nn.Module<Tensor, Tensor>
    {
        /// <summary>Built on the meta device (LazyModel) when the options say how its tensors get values.</summary>
        public bool Lazy => Options.Initialization is not null;

        /// <summary>The model as the pipeline's ranks build it.</summary>
        public TModel New() => Lazy ? LazyModel.Construct(Create) : Create();

        /// <summary>The one-process model: built and given its values the same way, but whole.</summary>
        public TModel Plain()
        {
            var model = New();
            if (Lazy) LazyModel.Materialize(model, Options.Initialization!);
            return model;
        }
    }

    /// <summary>
    /// For a lazily built model: this rank gave memory to exactly its stages' tensors, and the model's other
    /// tensors have none (the other stages were never materialized here).
    /// </summary>
    private static bool OnlyOwnStagesMaterialized(PipelineEnvironment mpi, nn.Module model, PipelineRunner pipe)
    {
        var own = pipe.Stages.SelectMany(s => s.named_parameters()).Select(p => p.name).ToHashSet();
        var wrong = model.named_parameters().Where(p => own.Contains(p.name) == p.parameter.is_meta).Select(p => p.name).ToArray();
        // A tied weight is one tensor: held by a stage here, it has memory under both its names.
        wrong = wrong.Where(name => !(name == "tokens.weight" && own.Contains("head.weight")) && !(name == "head.weight" && own.Contains("tokens.weight"))).ToArray();
        Console.WriteLine($"[rank {mpi.Rank}] lazy: {own.Count} parameters of its stages materialized, {model.named_parameters().Count(p => p.parameter.is_meta)} of the model's left without memory" +
                          (wrong.Length > 0 ? $"; WRONG: {string.Join(", ", wrong)}" : ""));
        return wrong.Length == 0;
    }

    public static bool CheckAgainstPlain<TModel>(PipelineEnvironment mpi, Setup<TModel> setup, int steps) where TModel : nn.Module<Tensor, Tensor>
    {
        torch.manual_seed(0);
        var model = setup.New();
        using var pipe = setup.Build(model, mpi, setup.Options);
        bool ok = !setup.Lazy || OnlyOwnStagesMaterialized(mpi, model, pipe);
        var optimizer = setup.Optimizer(pipe.Parameters());
        var scheduler = setup.Schedule ? optim.lr_scheduler.StepLR(optimizer, 1, 0.5) : null;

        torch.manual_seed(0);
        var reference = setup.Plain();
        // A tied parameter is listed under each of its names; the plain model must step and clip it once (as PyTorch's
        // parameters() does), so hand out each parameter object once.
        var referenceParameters_ = ParameterSet.Distinct(reference.parameters());
        var referenceOptimizer = setup.Optimizer(referenceParameters_);
        var referenceScheduler = setup.Schedule ? optim.lr_scheduler.StepLR(referenceOptimizer, 1, 0.5) : null;

        string who = $"[rank {mpi.Rank} stage {string.Join("+", pipe.Stages.Select(s => s.Index))}]";
        for (int step = 0; step < steps; step++)
        {
            var (input, target) = setup.Batch(step);
            optimizer.zero_grad();
            var loss = pipe.Step(input, target, setup.Loss);
            double? norm = setup.ClipNorm is double c ? pipe.ClipGradNorm(c) : null;
            optimizer.step();
            scheduler?.step();

            referenceOptimizer.zero_grad();
            var referenceLoss = setup.Loss(reference.forward(input), target);
            referenceLoss.backward();
            double? referenceNorm = setup.ClipNorm is double rc ? nn.utils.clip_grad_norm_(referenceParameters_, rc) : null;
            referenceOptimizer.step();
            referenceScheduler?.step();

            ok &= Parity.Compare(who, $"step {step} loss", loss, referenceLoss.detach());
            if (norm is double n) ok &= Parity.Compare(who, $"step {step} gradient norm", tensor(n), tensor(referenceNorm!.Value));
        }
        var referenceParameters = Parity.AllParameters(reference);
        foreach (var (name, parameter) in pipe.Stages.SelectMany(s => s.named_parameters()).DistinctBy(p => p.name))
            ok &= Parity.Compare(who, $"parameter {name} after {steps} steps", parameter, referenceParameters[name]);

        // Forward after training: each data-parallel replica returns its share of the batch's rows.
        var probe = setup.Batch(99).Input;
        var output = pipe.Forward(probe);
        if (pipe.IsLastStage)
        {
            Tensor expected;
            using (no_grad()) expected = reference.forward(probe);
            var share = expected.tensor_split(pipe.DataParallelSize, 0)[pipe.DataParallelRank];
            ok &= Parity.Compare(who, $"forward after training (replica {pipe.DataParallelRank} of {pipe.DataParallelSize})", output, share);
        }
        return ok;
    }

    /// <summary>
    /// Trains <paramref name="steps"/> steps starting at <paramref name="from"/> (after loading the checkpoint in
    /// <paramref name="load"/>, if given), then saves to <paramref name="save"/> (if given). Prints each loss's bits
    /// and a digest of this rank's parameters, so two runs can be compared bit for bit.
    /// </summary>
    public static bool Resume<TModel>(PipelineEnvironment mpi, Setup<TModel> setup, int from, int steps, string? load, string? save) where TModel : nn.Module<Tensor, Tensor>
    {
        torch.manual_seed(0);
        var model = setup.New();
        // A lazily built pipeline that resumes needs no initial values: the checkpoint gives them.
        var options = setup.Lazy && load is not null ? With(setup.Options, WeightInitialization.FromCheckpoint()) : setup.Options;
        using var pipe = setup.Build(model, mpi, options);
        var optimizer = setup.Optimizer(pipe.Parameters());
        if (load is not null)
        {
            long step = pipe.LoadCheckpoint(load, optimizer);
            if (step != from) throw new InvalidOperationException($"the checkpoint is at step {step}, not {from}");
        }
        for (int step = from; step < from + steps; step++)
        {
            var (input, target) = setup.Batch(step);
            optimizer.zero_grad();
            var loss = pipe.Step(input, target, setup.Loss);
            if (setup.ClipNorm is double c) pipe.ClipGradNorm(c);
            optimizer.step();
            if (mpi.Rank == 0) Console.WriteLine($"step {step} loss bits {BitConverter.SingleToInt32Bits(loss.item<float>()):X8}");
        }
        if (save is not null) pipe.SaveCheckpoint(save, optimizer, from + steps);
        Console.WriteLine($"[rank {mpi.Rank}] parameters digest {Digest(pipe.Stages.SelectMany(s => s.named_parameters()))}");
        return true;
    }

    /// <summary>Trains, saves, merges the checkpoint into a fresh plain model, and compares its output with the pipeline's.</summary>
    public static bool Merge<TModel>(PipelineEnvironment mpi, Setup<TModel> setup, string directory, Func<TModel, string, string, bool> merge) where TModel : nn.Module<Tensor, Tensor>
    {
        torch.manual_seed(0);
        var model = setup.Create();
        using var pipe = setup.Build(model, mpi, setup.Options);
        var optimizer = setup.Optimizer(pipe.Parameters());
        for (int step = 0; step < 2; step++)
        {
            var (input, target) = setup.Batch(step);
            optimizer.zero_grad();
            pipe.Step(input, target, setup.Loss);
            optimizer.step();
        }
        pipe.SaveCheckpoint(directory, optimizer, 2);
        var probe = setup.Batch(99).Input;
        var output = pipe.Forward(probe);
        if (!pipe.IsLastStage) return true;

        torch.manual_seed(12345); // a different start: every value must come from the checkpoint
        string merged = Path.Combine(directory, "merged.model.bin");
        merge(setup.Create(), directory, merged);
        torch.manual_seed(777);
        var plain = setup.Create();
        plain.load(merged);
        Tensor expected;
        using (no_grad()) expected = plain.forward(probe);
        return Parity.Compare($"[rank {mpi.Rank}]", "plain model loaded from the merged checkpoint: output", output, expected);
    }

    /// <summary>
    /// The reverse of a merge: a plain checkpoint (one file) loaded into the model on every rank before Build gives a
    /// pipeline whose output equals the plain model's with that checkpoint.
    /// </summary>
    public static bool Split<TModel>(PipelineEnvironment mpi, Setup<TModel> setup, string plainCheckpoint) where TModel : nn.Module<Tensor, Tensor>
    {
        torch.manual_seed(4242); // a different start: every value must come from the file
        TModel model;
        PipelineRunner<Tensor> pipe;
        if (setup.Lazy)
        {
            // Each rank reads only its stages' tensors from the file.
            model = setup.New();
            pipe = setup.Build(model, mpi, With(setup.Options, WeightInitialization.FromFile(plainCheckpoint)));
            if (!OnlyOwnStagesMaterialized(mpi, model, pipe)) return false;
        }
        else
        {
            model = setup.Create();
            model.load(plainCheckpoint);
            pipe = setup.Build(model, mpi, setup.Options);
        }
        using var _ = pipe;
        var probe = setup.Batch(99).Input;
        var output = pipe.Forward(probe);
        if (!pipe.IsLastStage) return true;
        torch.manual_seed(1);
        var plain = setup.Create();
        plain.load(plainCheckpoint);
        Tensor expected;
        using (no_grad()) expected = plain.forward(probe);
        return Parity.Compare($"[rank {mpi.Rank}]", "pipeline built from the plain checkpoint: output", output, expected);
    }

    private static PipelineOptions With(PipelineOptions o, WeightInitialization initialization) => new()
    {
        Microbatches = o.Microbatches, DataParallel = o.DataParallel, PrintPlan = o.PrintPlan, TraceDirectory = o.TraceDirectory, Inputs = o.Inputs,
        LossReduction = o.LossReduction, Target = o.Target, Outputs = o.Outputs, Initialization = initialization,
    };

    /// <summary>
    /// Loads a checkpoint of the tied GPT into a GPT of another width: every rank must refuse it with a message naming
    /// a tensor, and keep its parameters as they were.
    /// </summary>
    public static bool LoadOther(PipelineEnvironment mpi, string directory)
    {
        torch.manual_seed(0);
        using var pipe = TinyGpt.Pipeline.Build(new ParityApp.Models.TinyGpt(width: 24), mpi, new PipelineOptions { PrintPlan = false });
        var optimizer = optim.AdamW(pipe.Parameters(), 0.01);
        string before = Digest(pipe.Stages.SelectMany(s => s.named_parameters()));
        try
        {
            pipe.LoadCheckpoint(directory, optimizer);
            Console.WriteLine($"[rank {mpi.Rank}] loaded a checkpoint of another width");
            return false;
        }
        catch (InvalidDataException e)
        {
            bool unchanged = Digest(pipe.Stages.SelectMany(s => s.named_parameters())) == before;
            Console.WriteLine($"[rank {mpi.Rank}] refused: {e.Message} unchanged: {unchanged}");
            return unchanged;
        }
    }

    /// <summary>
    /// The 4-stage GPT under a stage placement chosen at start: "1f1b" (a stage per rank, 4 ranks), "interleaved"
    /// (stages 0 and 2 on rank 0, 1 and 3 on rank 1) or "v" (0 and 3 on rank 0, 1 and 2 on rank 1). "save" writes a
    /// checkpoint; "load" loads one saved under another placement, which must be refused and change nothing.
    /// </summary>
    public static bool Layout(PipelineEnvironment mpi, string action, string layout, string directory)
    {
        torch.manual_seed(0);
        var options = layout switch
        {
            "1f1b" => new PipelineOptions { PrintPlan = false },
            "interleaved" => new PipelineOptions { PrintPlan = false, Schedule = Pippy.Schedules.ScheduleKind.Interleaved1F1B, StagesPerRank = 2 },
            "v" => new PipelineOptions { PrintPlan = false, Schedule = Pippy.Schedules.ScheduleKind.ZeroBubbleV, StagesPerRank = 2 },
            _ => throw new ArgumentException($"unknown layout '{layout}'"),
        };
        using var pipe = TinyGpt.Pipeline.Build(new TinyGpt(), mpi, options);
        var optimizer = optim.AdamW(pipe.Parameters(), 0.01);
        Console.WriteLine($"[rank {mpi.Rank}] {layout}: stages {string.Join(", ", pipe.Stages.Select(s => s.Index))}");
        if (action == "save")
        {
            pipe.SaveCheckpoint(directory, optimizer, step: 0);
            return true;
        }
        string before = Digest(pipe.Stages.SelectMany(s => s.named_parameters()));
        try
        {
            pipe.LoadCheckpoint(directory, optimizer);
            Console.WriteLine($"[rank {mpi.Rank}] loaded a checkpoint of another stage layout");
            return false;
        }
        catch (Exception e) when (e is InvalidDataException or InvalidOperationException)
        {
            bool unchanged = Digest(pipe.Stages.SelectMany(s => s.named_parameters())) == before;
            Console.WriteLine($"[rank {mpi.Rank}] refused: {e.Message} unchanged: {unchanged}");
            return unchanged;
        }
    }

    /// <summary>
    /// Damages a saved checkpoint on rank 0, as a disk or a hand would after the save (<paramref name="damage"/>: one
    /// byte flipped in the parameters or in the optimizer state of rank 1's shard, or in the index; rank 1's shard cut
    /// short; or the index's checksums taken out, as in a checkpoint saved before Pippy wrote them). Then every rank,
    /// after a training step of its own, loads it: every rank must refuse with a message naming the file and the rank,
    /// keep its parameters and optimizer state as they were, and train on. MergeCheckpoint must refuse it too and write
    /// nothing; a checkpoint without checksums loads once <c>PipelineCheckpoint.AddChecksums</c> has added them.
    /// </summary>
    public static bool LoadDamaged<TModel>(PipelineEnvironment mpi, Setup<TModel> setup, string directory, string damage, Action<TModel, string, string> merge)
        where TModel : nn.Module<Tensor, Tensor>
    {
        if (mpi.Rank == 0) Console.WriteLine($"[rank 0] {Damage(directory, damage)}");
        mpi.Barrier();
        torch.manual_seed(0);
        using var pipe = setup.Build(setup.New(), mpi, setup.Options);
        var optimizer = setup.Optimizer(pipe.Parameters());
        void TrainStep(int step)
        {
            var (input, target) = setup.Batch(step);
            optimizer.zero_grad();
            pipe.Step(input, target, setup.Loss);
            optimizer.step();
        }
        TrainStep(5); // optimizer state of its own, which a half-done load would change
        string parameters = Digest(pipe.Stages.SelectMany(s => s.named_parameters())), state = OptimizerDigest(optimizer);
        bool ok = true;
        try
        {
            pipe.LoadCheckpoint(directory, optimizer);
            Console.WriteLine($"[rank {mpi.Rank}] MISMATCH: loaded the damaged checkpoint");
            ok = false;
        }
        catch (InvalidDataException e)
        {
            Say($"[rank {mpi.Rank}] refused: {e.Message}");
        }
        bool sameParameters = Digest(pipe.Stages.SelectMany(s => s.named_parameters())) == parameters, sameState = OptimizerDigest(optimizer) == state;
        Console.WriteLine($"[rank {mpi.Rank}] parameters unchanged: {(sameParameters ? "ok" : "MISMATCH")}");
        Console.WriteLine($"[rank {mpi.Rank}] optimizer state unchanged: {(sameState ? "ok" : "MISMATCH")}");
        ok &= sameParameters && sameState;
        TrainStep(6); // every rank is still in step with the others
        Console.WriteLine($"[rank {mpi.Rank}] trained a step after the refusal");

        if (damage == "no-checksums")
        {
            if (mpi.Rank == 0) PipelineCheckpoint.AddChecksums(directory);
            mpi.Barrier();
            long step = pipe.LoadCheckpoint(directory, optimizer);
            Console.WriteLine($"[rank {mpi.Rank}] loaded step {step} after AddChecksums");
        }
        else if (mpi.Rank == 0)
        {
            string output = Path.Combine(Path.GetTempPath(), "pippy-merged-" + Guid.NewGuid().ToString("N") + ".bin");
            try
            {
                merge(setup.Create(), directory, output);
                Console.WriteLine("[rank 0] MISMATCH: merged the damaged checkpoint");
                ok = false;
            }
            catch (InvalidDataException e)
            {
                Say($"[rank 0] merge refused: {e.Message}");
            }
            Console.WriteLine($"[rank 0] no merged file: {(File.Exists(output) ? "MISMATCH" : "ok")}");
            ok &= !File.Exists(output);
        }
        return ok;
    }

    /// <summary>Does <paramref name="damage"/> to the checkpoint in <paramref name="directory"/>; says what it did.</summary>
    private static string Damage(string directory, string damage)
    {
        string indexPath = Path.Combine(directory, PipelineCheckpoint.IndexFile);
        var index = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(indexPath))!;
        string shard = Path.Combine(directory, (string)index["Shards"]![1]!["File"]!);
        // The shard: its magic string, stage count, and per stage its index and module section; then the optimizer
        // flag, the optimizer's state, the step (8 bytes), the RNG state's length (4) and the RNG state.
        (long Start, long End) Sections(bool optimizerPart)
        {
            using var reader = new BinaryReader(File.OpenRead(shard));
            reader.ReadString();
            int stages = reader.ReadInt32();
            long start = reader.BaseStream.Position + 4;
            for (int i = 0; i < stages; i++)
            {
                reader.ReadInt32();
                ModelFile.Skim(reader);
            }
            if (!optimizerPart) return (start, reader.BaseStream.Position);
            if (!reader.ReadBoolean()) throw new InvalidOperationException($"{shard} holds no optimizer state");
            return (reader.BaseStream.Position, reader.BaseStream.Length - 12 - torch.get_rng_state().NumberOfElements);
        }
        switch (damage)
        {
            case "parameters":
            case "optimizer":
                var (start, end) = Sections(damage == "optimizer");
                long at = (start + end) / 2;
                using (var file = File.Open(shard, FileMode.Open, FileAccess.ReadWrite))
                {
                    file.Position = at;
                    int b = file.ReadByte();
                    file.Position = at;
                    file.WriteByte((byte)(b ^ 0xFF));
                }
                return $"flipped byte {at} of {shard}, in its {(damage == "optimizer" ? "optimizer state" : "parameters")} (bytes {start}-{end})";
            case "index":
                // The step's digit: the index stays valid JSON, of another step; only its checksum tells.
                var bytes = File.ReadAllBytes(indexPath);
                int digit = System.Text.Encoding.UTF8.GetString(bytes).IndexOf("\"Step\": ", StringComparison.Ordinal) + "\"Step\": ".Length;
                bytes[digit] ^= 0x02;
                File.WriteAllBytes(indexPath, bytes);
                return $"flipped byte {digit} of {indexPath}, the step";
            case "cut":
                long length = new FileInfo(shard).Length;
                using (var file = File.Open(shard, FileMode.Open, FileAccess.ReadWrite)) file.SetLength(length / 2);
                return $"cut {shard} from {length} to {length / 2} bytes";
            case "no-checksums":
                index.AsObject().Remove("Checksum");
                foreach (var entry in index["Shards"]!.AsArray())
                {
                    entry!.AsObject().Remove("Length");
                    entry.AsObject().Remove("Checksum");
                }
                File.WriteAllText(indexPath, index.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
                return $"took the checksums out of {indexPath}";
            default:
                throw new ArgumentException($"unknown damage '{damage}'");
        }
    }

    /// <summary>
    /// One line in one write to standard output: Console.WriteLine writes a long line in pieces, which mpiexec may
    /// interleave with other ranks' lines.
    /// </summary>
    private static void Say(string line)
    {
        Console.Out.Flush();
        using var stdout = Console.OpenStandardOutput();
        stdout.Write(System.Text.Encoding.UTF8.GetBytes(line + "\n"));
    }

    private static string OptimizerDigest(OptimizerHelper optimizer)
    {
        using var memory = new MemoryStream();
        using (var writer = new BinaryWriter(memory, System.Text.Encoding.UTF8, leaveOpen: true)) optimizer.save_state_dict(writer);
        return Convert.ToHexString(SHA256.HashData(memory.ToArray()))[..16];
    }

    private static string Digest(IEnumerable<(string Name, Parameter Parameter)> parameters)
    {
        using var sha = SHA256.Create();
        foreach (var (name, parameter) in parameters.OrderBy(p => p.Name, StringComparer.Ordinal))
        {
            var bytes = parameter.detach().contiguous().bytes.ToArray();
            sha.TransformBlock(bytes, 0, bytes.Length, null, 0);
        }
        sha.TransformFinalBlock(Array.Empty<byte>(), 0, 0);
        return Convert.ToHexString(sha.Hash!)[..16];
    }
}
