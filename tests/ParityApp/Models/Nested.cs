using Pippy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>
/// An expression-bodied forward whose split calls are nested inside each other: the generator hoists a's and b's
/// calls into statements of their own, so the three stages are a | b | c with the arithmetic where it belongs.
/// </summary>
[Pipeline(Microbatches = 2)]
public sealed partial class Nested : Module<Tensor, Tensor>
{
    [SplitEnd] private readonly Linear a;
    [SplitEnd] private readonly Linear b;
    private readonly Linear c;

    public Nested() : base(nameof(Nested))
    {
        a = Linear(5, 7);
        b = Linear(7, 7);
        c = Linear(7, 3);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => c.forward(b.forward(a.forward(x).relu()).tanh() + x.sum(1, true));
}
