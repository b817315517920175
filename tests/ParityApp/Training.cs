using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using Pippy.Runtime;
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
