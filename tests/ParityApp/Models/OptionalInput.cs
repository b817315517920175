using Pippy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>
/// An optional tensor argument: <c>shift</c> may be null, in which case forward skips it. Stage 1 reads it straight
/// from the batch; given, it is divided into microbatches like any input; null, every microbatch is given null.
/// </summary>
[Pipeline(Microbatches = 4)]
public sealed partial class OptionalInput : Module<Tensor, Tensor?, Tensor>
{
    [SplitEnd] private readonly Linear first;
    private readonly Linear second;

    public OptionalInput() : base(nameof(OptionalInput))
    {
        first = Linear(10, 16);
        second = Linear(16, 4);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor? shift)
    {
        var h = first.forward(x).tanh();
        if (shift is not null) h = h + shift;
        return second.forward(h);
    }
}
