using Pippy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>A boundary value that is a transposed view (not contiguous): the transport sends a contiguous copy.</summary>
[Pipeline(Microbatches = 2)]
public sealed partial class Transposed : Module<Tensor, Tensor>
{
    [SplitEnd] private readonly Linear first = Linear(6, 5);
    private readonly Linear second = Linear(6, 3);

    public Transposed() : base(nameof(Transposed)) { RegisterComponents(); }

    public override Tensor forward(Tensor x)
    {
        var turned = first.forward(x).tanh().t();
        return second.forward(turned.t().matmul(ones(5, 6)));
    }
}
