using System;
using System.Linq;
using Pippy;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>
/// A text classifier over bags of tokens, as EmbeddingBag takes them: one flat list of token ids and the offset where
/// each bag starts. Neither can be cut along a dimension (a part of the flat list is not a part of the bags, and the
/// offsets of a later part do not start at 0), so they are divided by <see cref="WholeBags"/>.
/// </summary>
[Pipeline(Microbatches = 4)]
public sealed partial class BagClassifier : Module<Tensor, Tensor, Tensor>
{
    [SplitEnd] private readonly EmbeddingBag bag;
    private readonly Linear hidden;
    private readonly Linear classify;

    public BagClassifier() : base(nameof(BagClassifier))
    {
        bag = EmbeddingBag(30, 8, mode: EmbeddingBagMode.Mean);
        hidden = Linear(8, 12);
        classify = Linear(12, 4);
        RegisterComponents();
    }

    public override Tensor forward(Tensor tokens, Tensor offsets)
    {
        var pooled = bag.forward(tokens, offsets, null);
        var h = hidden.forward(pooled).relu();
        return classify.forward(h);
    }

    /// <summary>
    /// Divides bags into <paramref name="parts"/> groups of whole bags (the first groups take the remainder, as
    /// tensor_split does): values[0] is the flat token list, values[1] the bags' start offsets, and any further
    /// value (the target: a label per bag) is divided by bags too. Each part's offsets start at 0 again.
    /// </summary>
    public static Tensor[][] WholeBags(Tensor[] values, int parts)
    {
        var (tokens, offsets) = (values[0], values[1]);
        long bags = offsets.shape[0];
        if (bags < parts) throw new ArgumentException($"{bags} bags cannot make {parts} parts of whole bags.");
        var starts = offsets.data<long>().ToArray();
        var result = new Tensor[parts][];
        long first = 0;
        for (int p = 0; p < parts; p++)
        {
            long count = bags / parts + (p < bags % parts ? 1 : 0);
            long begin = starts[first], end = first + count < bags ? starts[first + count] : tokens.shape[0];
            var part = new Tensor[values.Length];
            part[0] = tokens.narrow(0, begin, end - begin);
            part[1] = offsets.narrow(0, first, count) - begin;
            for (int v = 2; v < values.Length; v++) part[v] = values[v].narrow(0, first, count);
            result[p] = part;
            first += count;
        }
        return result;
    }
}
