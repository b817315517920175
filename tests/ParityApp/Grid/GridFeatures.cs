using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Runtime;
using Pippy.Runtime.Materialization;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Grid;

/// <summary>
/// One model feature of the parity grid: how to build the pipeline's model and the plain one, how to build the
/// pipeline, run the plain forward, and make batches and the loss. Everything is on tensor arrays, so one harness runs
/// every feature.
/// </summary>
public sealed record GridFeature(
    string Name,
    Func<nn.Module> Create,
    Func<nn.Module> CreatePlain,
    Func<nn.Module, PipelineEnvironment, PipelineOptions, PipelineRunner> Build,
    Func<nn.Module, Tensor[], object?[], Tensor[]> PlainForward,
    Func<int, int, (Tensor[] Inputs, Tensor Target)> Batch,
    Func<Tensor[], Tensor, Tensor> Loss,
    WeightInitialization? Initialization = null,
    IReadOnlyDictionary<string, MicrobatchSpec>? Inputs = null,
    MicrobatchSpec? Target = null,
    double Tolerance = 1e-5,
    Func<int, object?[]>? PlainArguments = null)
{
    /// <summary>forward's plain (non-tensor) arguments at a step of the grid, after its tensors; none for most features.</summary>
    public object?[] Plain(int step) => PlainArguments?.Invoke(step) ?? Array.Empty<object?>();

    /// <summary>All of forward's arguments at a step, in its order (the tensors first), as the pipeline is given them.</summary>
    public object?[] Arguments(Tensor[] inputs, int step) => inputs.Cast<object?>().Concat(Plain(step)).ToArray();

    /// <summary>The tolerance of the bf16 feature: bf16 keeps 8 significant bits (a relative step of 2^-8, 0.4 %), and sums in another order differ by a few steps.</summary>
    public const double BFloat16Tolerance = 2e-2;

    /// <summary>
    /// Contiguous rows, the microbatches uneven (8 rows into 4: 1, 2, 2, 3); halves for 2 replicas, because the grid
    /// compares each replica's outputs with its even share of the plain model's. Input and target divided together. Declared
    /// before <see cref="All"/>, which reads it when the type is initialised.
    /// </summary>
    private static readonly MicrobatchSpec UnevenRows = MicrobatchSpec.Custom("uneven rows", (tensors, parts) =>
    {
        long rows = tensors[0].shape[0], size = rows / parts;
        var sizes = Enumerable.Repeat(size, parts).ToArray();
        sizes[parts - 1] += rows - size * parts;
        if (parts > 2 && size >= 2) { sizes[0]--; sizes[parts - 1]++; }
        var result = new Tensor[parts][];
        long start = 0;
        for (int k = 0; k < parts; k++)
        {
            result[k] = tensors.Select(t => t.narrow(0, start, sizes[k])).ToArray();
            start += sizes[k];
        }
        return result;
    });

    /// <summary>Every feature of the grid, in the order the grid runs them.</summary>
    public static IReadOnlyList<GridFeature> All { get; } = new[]
    {
        Single("chain", () => new GridChain(), (m, e, o) => GridChain.Pipeline.Build((GridChain)m, e, o), (m, x) => ((GridChain)m).forward(x[0]), Floats(6)),
        Single("fan-out", () => new GridFanOut(), (m, e, o) => GridFanOut.Pipeline.Build((GridFanOut)m, e, o), (m, x) => ((GridFanOut)m).forward(x[0]), Floats(6)),
        Single("no-grad-value", () => new GridTokens(), (m, e, o) => GridTokens.Pipeline.Build((GridTokens)m, e, o), (m, x) => ((GridTokens)m).forward(x[0]), Tokens),
        // Three tensors and three plain arguments (a flag, a number, an enum) that change from step to step.
        new GridFeature("inputs-tuple", () => new GridThreeInputs(), () => new GridThreeInputs(),
            (m, e, o) => GridThreeInputs.Pipeline.Build((GridThreeInputs)m, e, o),
            (m, x, a) => { var (u, v) = ((GridThreeInputs)m).forward(x[0], x[1], x[2], (bool)a[0]!, (double)a[1]!, (GridMix)a[2]!); return new[] { u, v }; },
            (step, rows) =>
            {
                var g = new Generator(500 + (ulong)step);
                return (new[] { randn(rows, 6, generator: g), randn(rows, 8, generator: g), randn(rows, 8, generator: g) }, randn(rows, 4, generator: g));
            },
            (o, t) => functional.mse_loss(o[0], t, Reduction.Sum) + 0.1 * o[1].sum(),
            PlainArguments: step => new object?[] { step % 2 == 0, 0.5 + step, (GridMix)(step % 3) }),
        new GridFeature("tied", () => new GridTied(), () => new GridTied(tie: true),
            (m, e, o) => GridTied.Pipeline.Build((GridTied)m, e, o), (m, x, _) => new[] { ((GridTied)m).forward(x[0]) }, Tokens12, Mse),
        Single("shared-module", () => new GridShared(), (m, e, o) => GridShared.Pipeline.Build((GridShared)m, e, o), (m, x) => ((GridShared)m).forward(x[0]), Floats(6)),
        Single("split-into", () => new GridList(), (m, e, o) => GridList.Pipeline.Build((GridList)m, e, o), (m, x) => ((GridList)m).forward(x[0]), Floats(6)),
        Single("helpers-using", () => new GridHelpers(), (m, e, o) => GridHelpers.Pipeline.Build((GridHelpers)m, e, o), (m, x) => ((GridHelpers)m).forward(x[0]), Floats(6)),
        Single("recompute-blocks", () => new GridRecompute(), (m, e, o) => GridRecompute.Pipeline.Build((GridRecompute)m, e, o), (m, x) => ((GridRecompute)m).forward(x[0]), Floats(6)),
        Single("sequential", () => new GridSequential(), (m, e, o) => GridSequential.Pipeline.Build((GridSequential)m, e, o), (m, x) => ((GridSequential)m).forward(x[0]), Floats(6)),
        // The tied model in bf16 (parameters, activations and messages; the loss in float32): data-parallel and tied
        // gradient sums accumulate in float32. Compared with the plain model in bf16 at rtol 2e-2.
        new GridFeature("bf16-tied", () => BFloat16(new GridTied()), () => StillTied(BFloat16(new GridTied(tie: true))),
            (m, e, o) => GridTied.Pipeline.Build((GridTied)m, e, o), (m, x, _) => new[] { ((GridTied)m).forward(x[0]) }, Tokens12,
            (o, t) => functional.mse_loss(o[0].to_type(ScalarType.Float32), t, Reduction.Sum), Tolerance: BFloat16Tolerance),
        // The chain model with its input and target divided by the user's function (MicrobatchSpec.Custom).
        new GridFeature("custom-split", () => new GridChain(), () => new GridChain(), (m, e, o) => GridChain.Pipeline.Build((GridChain)m, e, o),
            (m, x, _) => new[] { ((GridChain)m).forward(x[0]) }, Floats(6), Mse, Inputs: new Dictionary<string, MicrobatchSpec> { ["x"] = UnevenRows }, Target: UnevenRows),
        // The fan-out model built on the meta device: each rank gives memory and seeded values to its own stages only.
        new GridFeature("lazy", () => LazyModel.Construct(() => new GridFanOut()), () => { var m = LazyModel.Construct(() => new GridFanOut()); LazyModel.Materialize(m, WeightInitialization.Seeded(11)); return m; },
            (m, e, o) => GridFanOut.Pipeline.Build((GridFanOut)m, e, o), (m, x, _) => new[] { ((GridFanOut)m).forward(x[0]) }, Floats(6), Mse, WeightInitialization.Seeded(11)),
    };

    private static GridFeature Single(string name, Func<nn.Module> create, Func<nn.Module, PipelineEnvironment, PipelineOptions, PipelineRunner> build,
        Func<nn.Module, Tensor[], Tensor> forward, Func<int, int, (Tensor[], Tensor)> batch) =>
        new(name, create, create, build, (m, x, _) => new[] { forward(m, x) }, batch, Mse);

    private static nn.Module BFloat16(nn.Module model)
    {
        model.to(ScalarType.BFloat16);
        if (model.parameters().FirstOrDefault(p => p.dtype != ScalarType.BFloat16) is { } other)
            throw new InvalidOperationException($"A parameter stayed {other.dtype} after the conversion to bf16.");
        return model;
    }

    /// <summary>The plain model's tie must survive the conversion, or the grid would compare against an untied model.</summary>
    private static nn.Module StillTied(nn.Module model)
    {
        var weights = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using (no_grad())
        {
            // Doubling one and halving it again is exact in binary floating point: the other sees it only if they share memory.
            var before = weights["head.weight"].to_type(ScalarType.Float32).sum().item<float>();
            weights["tokens.weight"].mul_(2);
            bool tied = weights["head.weight"].to_type(ScalarType.Float32).sum().item<float>() != before;
            weights["tokens.weight"].div_(2);
            if (!tied) throw new InvalidOperationException("The conversion to bf16 untied the plain model's embedding and head.");
        }
        return model;
    }

    private static Tensor Mse(Tensor[] outputs, Tensor target) => functional.mse_loss(outputs[0], target, Reduction.Sum);

    private static Func<int, int, (Tensor[], Tensor)> Floats(int width) => (step, rows) =>
    {
        var g = new Generator(100 + (ulong)step);
        return (new[] { randn(rows, width, generator: g) }, randn(rows, 4, generator: g));
    };

    private static (Tensor[], Tensor) Tokens(int step, int rows)
    {
        var g = new Generator(200 + (ulong)step);
        return (new[] { randint(0, 12, new long[] { rows, 5 }, generator: g) }, randn(rows, 4, generator: g));
    }

    private static (Tensor[], Tensor) Tokens12(int step, int rows)
    {
        var g = new Generator(300 + (ulong)step);
        return (new[] { randint(0, 12, new long[] { rows, 5 }, generator: g) }, randn(rows, 12, generator: g));
    }
}
