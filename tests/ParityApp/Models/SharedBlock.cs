using Pippy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>
/// A submodule used by two stages (PiPPy's multi-use parameter): stages 0 and 2 each hold a copy of 'shared', the
/// copies start from stage 0's values and their gradients are summed after the step.
/// </summary>
[Pipeline(Microbatches = 2)]
public sealed partial class SharedBlock : Module<Tensor, Tensor>
{
    private readonly Linear shared;
    [SplitEnd] private readonly Linear down;
    [SplitEnd] private readonly Linear middle;
    private readonly Linear up;

    public SharedBlock() : base(nameof(SharedBlock))
    {
        shared = Linear(8, 8);
        down = Linear(8, 8);
        middle = Linear(8, 8);
        up = Linear(8, 3);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        x = down.forward(shared.forward(x).relu());
        x = middle.forward(x).relu();
        return up.forward(shared.forward(x));
    }
}
