using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace ParityApp;

/// <summary>
/// Runs one scenario on this rank and checks it against the plain model in one process (same seed): the forward
/// outputs on the last stage's rank, the loss on every rank, and the gradient of every parameter this rank's stage
/// holds. Prints one line per check ("ok" or "MISMATCH"); returns whether all passed.
/// </summary>
public static class Parity
{
    public static bool Check<TModel, TOutput>(
        PipelineEnvironment mpi,
        Func<TModel> create,
        Func<TModel, PipelineEnvironment, PipelineOptions, PipelineRunner<TOutput>> build,
        Func<TModel, Tensor[], TOutput> plainForward,
        Func<TOutput, Tensor[]> flatten,
        Tensor[] inputs,
        Tensor target,
        Func<TOutput, Tensor, Tensor> loss,
        PipelineOptions options,
        string[]? perturbOnLaterRanks = null,
        double absoluteTolerance = 0)
        where TModel : nn.Module
    {
        // PARITY_TRACE_DIR: write each rank's measured action times (Chrome trace) there.
        if (System.Environment.GetEnvironmentVariable("PARITY_TRACE_DIR") is { Length: > 0 } traces)
            options = new PipelineOptions { Microbatches = options.Microbatches, Inputs = options.Inputs, Target = options.Target, Outputs = options.Outputs, TraceDirectory = traces,
                Schedule = options.Schedule, StagesPerRank = options.StagesPerRank };
        torch.manual_seed(0);
        var model = create();
        if (perturbOnLaterRanks is not null && mpi.Rank > 0)
        {
            // Replicated parameters must come from the lowest stage: spoil the later ranks' copies before Build.
            using var noGrad = torch.no_grad();
            foreach (var (name, parameter) in model.named_parameters().Where(p => perturbOnLaterRanks.Any(prefix => p.name.StartsWith(prefix))))
            {
                parameter.fill_(7.0);
                Console.WriteLine($"[rank {mpi.Rank}] spoiled {name} before Build");
            }
        }
        using var pipe = build(model, mpi, options);
        var outputs = pipe.Forward(inputs);
        var pipelineLoss = pipe.Step(inputs, target, loss);

        torch.manual_seed(0);
        var reference = create();
        TOutput referenceOutputs;
        using (torch.no_grad()) referenceOutputs = plainForward(reference, inputs);
        var referenceLoss = loss(plainForward(reference, inputs), target);
        referenceLoss.backward();

        string who = $"[rank {mpi.Rank} stage {string.Join("+", pipe.Stages.Select(s => s.Index))}]";
        bool ok = true;
        if (pipe.IsLastStage)
        {
            var actual = flatten(outputs!);
            var expected = flatten(referenceOutputs);
            for (int i = 0; i < expected.Length; i++) ok &= Compare(who, $"output {i}", actual[i], expected[i]);
        }
        ok &= Compare(who, "loss", pipelineLoss, referenceLoss.detach());
        var referenceParameters = AllParameters(reference);
        int checkedGradients = 0;
        foreach (var (name, parameter) in pipe.Stages.SelectMany(s => s.named_parameters()).DistinctBy(p => p.name))
        {
            ok &= Compare(who, $"grad {name}", parameter.grad!, referenceParameters[name].grad!, absoluteTolerance);
            checkedGradients++;
        }
        Console.WriteLine($"{who} checked {checkedGradients} gradients");
        var untrained = TrainedByNoStage(mpi, pipe, reference);
        Console.WriteLine($"{who} parameters the plain model trains and no stage holds: {(untrained.Length == 0 ? "none ok" : string.Join(", ", untrained) + " MISMATCH")}");
        ok &= untrained.Length == 0;
        Console.WriteLine($"{who} messages sent in the step: {pipe.LastStep.ActivationsSent} activations, {pipe.LastStep.GradientsSent} gradients");
        return ok;
    }

    /// <summary>Every parameter under every name it has (a tied parameter is listed once by named_parameters).</summary>
    public static Dictionary<string, Tensor> AllParameters(nn.Module model)
    {
        var all = new Dictionary<string, Tensor>();
        foreach (var (prefix, module) in model.named_modules())
            foreach (var (name, parameter) in module.named_parameters(recurse: false))
                all[prefix.Length == 0 ? name : $"{prefix}.{name}"] = parameter;
        return all;
    }

    /// <summary>
    /// The parameters the plain model trains (those with a gradient) that no rank's stages hold, i.e. that no optimizer
    /// of the pipeline would ever update; a collective, so every rank calls it with the same plain model. Empty when the
    /// pipeline trains everything the plain model trains (issue 16: a submodule reached through a helper method once
    /// dropped out of every stage, and outputs and gradients still matched).
    /// </summary>
    public static string[] TrainedByNoStage(PipelineEnvironment mpi, PipelineRunner pipe, nn.Module plain)
    {
        var held = pipe.Stages.SelectMany(s => s.named_parameters()).Select(p => p.name).ToHashSet();
        var missing = new List<string>();
        foreach (var (name, parameter) in AllParameters(plain).OrderBy(p => p.Key, StringComparer.Ordinal))
            if (parameter.grad is not null && mpi.Sum(held.Contains(name) ? 1 : 0) == 0) missing.Add(name);
        return missing.ToArray();
    }

    /// <summary>
    /// allclose with rtol 1e-5 and an absolute tolerance of 1e-5 of the reference's largest magnitude, or
    /// <paramref name="absoluteTolerance"/> where that is larger (for a gradient that is zero in exact arithmetic,
    /// whose float rounding differs with the batch size).
    /// </summary>
    public static bool Compare(string who, string what, Tensor? actual, Tensor? expected, double absoluteTolerance = 0)
    {
        if (actual is null || expected is null)
        {
            bool bothMissing = actual is null && expected is null;
            Console.WriteLine($"{who} {what}: {(actual is null ? "missing" : "present")} (reference {(expected is null ? "missing" : "present")}) {(bothMissing ? "ok" : "MISMATCH")}");
            return bothMissing;
        }
        var (close, maxDiff, scale) = Closeness(actual, expected, absoluteTolerance);
        Console.WriteLine($"{who} {what}: max |diff| {maxDiff:E2} (max |ref| {scale:E2}) {(close ? "ok" : "MISMATCH")}");
        return close;
    }

    /// <summary>
    /// The comparison every parity check makes: allclose with rtol 1e-5 and an absolute tolerance of 1e-5 of the
    /// reference's largest magnitude (or <paramref name="absoluteTolerance"/>, if larger); a shape mismatch is never close.
    /// Low-precision models give a larger <paramref name="relativeTolerance"/> (both the rtol and the share of the magnitude).
    /// </summary>
    public static (bool Close, double MaxDiff, double Scale) Closeness(Tensor actual, Tensor expected, double absoluteTolerance = 0, double relativeTolerance = 1e-5)
    {
        actual = actual.to_type(ScalarType.Float64);
        expected = expected.to_type(ScalarType.Float64);
        bool sameShape = actual.shape.SequenceEqual(expected.shape);
        double maxDiff = sameShape ? (actual - expected).abs().max().item<double>() : double.PositiveInfinity;
        double scale = expected.abs().max().item<double>();
        bool close = sameShape && actual.allclose(expected, rtol: relativeTolerance, atol: Math.Max(relativeTolerance * Math.Max(scale, 1e-12), absoluteTolerance));
        return (close, maxDiff, scale);
    }
}
