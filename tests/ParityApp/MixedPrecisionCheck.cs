using System;
using System.Collections.Generic;
using System.Linq;
using ParityApp.Grid;
using Pippy.Runtime;
using Pippy.Schedules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ParityApp;

/// <summary>
/// Mixed precision against the plain model trained the same way: the grid's tied model (an embedding on stage 0 tied to
/// the head on stage 3) in bf16 or fp16, float32 master weights under AdamW with global clipping, dynamic loss scaling.
/// The plain model in one process does by hand what MixedPrecision does (scale the loss, skip a step whose gradients are
/// not finite and lower the scale, otherwise unscale into float32 masters, clip, step, round back). fp16 starts at a
/// scale that overflows, so its first step is skipped on every rank; the scale then grows every 2 good steps.
/// </summary>
public static class MixedPrecisionCheck
{
    private const int Steps = 5;

    /// <param name="placement">"" (one pipeline), "data-parallel" (two), or "data-parallel-sharded" (two, the optimizer's state sharded across them).</param>
    public static bool Run(PipelineEnvironment mpi, string precision, string placement)
    {
        bool dataParallel = placement.StartsWith("data-parallel", StringComparison.Ordinal), sharded = placement == "data-parallel-sharded";
        var dtype = precision == "fp16" ? ScalarType.Float16 : ScalarType.BFloat16;
        var scaling = precision == "fp16" ? new LossScaling(Initial: 1e9, Growth: 2, Backoff: 1e-6, GrowthInterval: 2) : LossScaling.None;
        manual_seed(0);
        var model = new GridTied();
        model.to(dtype);
        manual_seed(0);
        var plain = new GridTied(tie: true);
        plain.to(dtype);
        var options = dataParallel
            ? new PipelineOptions { Schedule = ScheduleKind.Interleaved1F1B, StagesPerRank = 2, DataParallel = 2, PrintPlan = false }
            : new PipelineOptions { Schedule = ScheduleKind.OneFOneB, PrintPlan = false };
        using var pipe = GridTied.Pipeline.Build(model, mpi, options);
        var mixed = new MixedPrecision<Tensor>(pipe, scaling);
        var shard = sharded ? mixed.ShardOptimizerState() : null;
        var optimizer = optim.AdamW(shard?.Parameters ?? mixed.MasterParameters, 1e-2);
        Func<Tensor, Tensor, Tensor> loss = (o, t) => nn.functional.mse_loss(o.to_type(ScalarType.Float32), t, nn.Reduction.Sum);

        // The plain reference: masters of the distinct parameters (the tied weight once).
        var plainParameters = plain.parameters().DistinctBy(p => p.Handle).ToArray();
        var plainParameterList = plain.parameters().ToArray();
        Parameter[] masters;
        using (no_grad()) masters = plainParameters.Select(p => new Parameter(p.detach().to_type(ScalarType.Float32).clone(), requires_grad: true)).ToArray();
        var plainOptimizer = optim.AdamW(masters, 1e-2);
        double plainScale = scaling.Initial;
        int plainGood = 0, plainSkipped = 0;

        var failures = new List<string>();
        for (int step = 0; step < Steps; step++)
        {
            var g = new Generator(300 + (ulong)step);
            var x = randint(0, 12, new long[] { 8, 5 }, generator: g);
            var y = randn(8, 12, generator: g);

            optimizer.zero_grad();
            double scaleBefore = mixed.Scale;
            var value = mixed.Step(x, y, loss);
            bool applied = mixed.Unscale();
            if (applied)
            {
                mixed.ClipGradNorm(0.5);
                optimizer.step();
                shard?.Gather();
                mixed.CopyToModel();
            }

            plainOptimizer.zero_grad();
            foreach (var p in plainParameters) p.grad = null;
            var plainLoss = loss(plain.forward(x), y);
            (plainLoss * plainScale).backward();
            bool plainFinite = plainParameters.All(p => p.grad is null || isfinite(p.grad).all().item<bool>());
            if (plainFinite)
            {
                using (no_grad())
                    for (int i = 0; i < masters.Length; i++) masters[i].grad = plainParameters[i].grad is { } grad ? grad.to_type(ScalarType.Float32) / plainScale : null;
                nn.utils.clip_grad_norm_(masters, 0.5);
                plainOptimizer.step();
                using (no_grad())
                    for (int i = 0; i < masters.Length; i++) plainParameters[i].copy_(masters[i]);
                if (++plainGood >= scaling.GrowthInterval) { plainGood = 0; plainScale *= scaling.Growth; }
            }
            else
            {
                plainSkipped++;
                plainGood = 0;
                plainScale = Math.Max(scaling.Minimum, plainScale * scaling.Backoff);
            }

            if (applied != plainFinite) failures.Add($"step {step}: the pipeline {(applied ? "stepped" : "skipped")}, the plain model {(plainFinite ? "stepped" : "skipped")}");
            if (mixed.Scale != plainScale) failures.Add($"step {step}: scale {mixed.Scale} against {plainScale}");
            if (applied && !Parity.Closeness(value, plainLoss.detach(), relativeTolerance: GridFeature.BFloat16Tolerance).Close)
                failures.Add($"step {step}: loss {value.item<float>()} against {plainLoss.item<float>()}");
            Console.WriteLine($"[rank {mpi.Rank}] step {step}: scale {scaleBefore:G3}, {(applied ? "stepped" : "skipped")}, loss {value.to_type(ScalarType.Float32).item<float>():F4}");
        }
        var expected = plain.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        int compared = 0;
        foreach (var stage in pipe.Stages)
            foreach (var (name, parameter) in stage.named_parameters())
            {
                compared++;
                if (parameter.dtype != dtype) failures.Add($"{name} is {parameter.dtype}, not {dtype}");
                var (close, maxDiff, scale) = Parity.Closeness(parameter, expected[name], relativeTolerance: GridFeature.BFloat16Tolerance);
                if (!close) failures.Add($"{name} after {Steps} steps: max |diff| {maxDiff:E2} (max |expected| {scale:E2})");
            }
        if (mixed.SkippedSteps != plainSkipped) failures.Add($"{mixed.SkippedSteps} steps skipped against {plainSkipped}");
        foreach (var failure in failures) Console.WriteLine($"[rank {mpi.Rank}] MISMATCH {failure}");
        bool all = mpi.AllTrue(failures.Count == 0 && compared > 0);
        if (mpi.Rank == 0)
            Console.WriteLine(all
                ? $"PASS mixed-precision {precision}{(placement == "" ? "" : " " + placement)}: {Steps} steps ({plainSkipped} skipped), every parameter within rtol {GridFeature.BFloat16Tolerance} of the plain model's"
                : "FAIL mixed-precision");
        return all;
    }
}
