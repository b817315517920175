using Pippy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>
/// Microbatch specs: x is sequence-first [time, batch, features], so it is split along dimension 1; scale is one
/// vector for every microbatch (replicated); the output is concatenated along dimension 1 and the statistic summed.
/// </summary>
[Pipeline(Microbatches = 2)]
public sealed partial class SequenceFirst : Module<Tensor, Tensor, (Tensor, Tensor)>
{
    [SplitEnd] private readonly Linear encode;
    private readonly Linear decode;

    public SequenceFirst() : base(nameof(SequenceFirst))
    {
        encode = Linear(6, 6);
        decode = Linear(6, 4);
        RegisterComponents();
    }

    public override (Tensor, Tensor) forward(Tensor x, Tensor scale)
    {
        var h = encode.forward(x * scale).relu();
        var y = decode.forward(h * scale);
        return (y, y.abs().sum());
    }
}
