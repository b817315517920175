using Pippy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>
/// Six inputs, the most a TorchSharp module's forward takes (Module&lt;T1, ..., T6, TResult&gt;), read by different
/// stages: stage 0 reads a and b, stage 1 c and d, stage 2 e and f (model inputs given straight to later stages).
/// </summary>
[Pipeline(Microbatches = 3)]
public sealed partial class SixInputs : Module<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>
{
    [SplitEnd] private readonly Linear first;
    [SplitEnd] private readonly Linear second;
    private readonly Linear third;

    public SixInputs() : base(nameof(SixInputs))
    {
        first = Linear(4, 6);
        second = Linear(6, 6);
        third = Linear(6, 3);
        RegisterComponents();
    }

    public override Tensor forward(Tensor a, Tensor b, Tensor c, Tensor d, Tensor e, Tensor f)
    {
        var h = first.forward(a) * b;
        h = second.forward(h + c).tanh() + d;
        return third.forward(h * e) + f;
    }
}
