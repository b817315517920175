using Pippy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>
/// Four stages with a skip connection: h0, made in stage 0, is read by stage 1 and again by stage 3, so it goes
/// 0 -> 1 and 0 -> 3 directly, and its gradient is the sum of what both send back.
/// </summary>
[Pipeline(Microbatches = 4)]
public sealed partial class Residual : Module<Tensor, Tensor>
{
    [SplitEnd] private readonly Linear embed;
    [SplitEnd] private readonly Linear first;
    [SplitEnd] private readonly Linear second;
    private readonly Linear head;

    public Residual() : base(nameof(Residual))
    {
        embed = Linear(16, 32);
        first = Linear(32, 32);
        second = Linear(32, 32);
        head = Linear(32, 8);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h0 = embed.forward(x).tanh();
        var h1 = first.forward(h0).relu();
        var h2 = second.forward(h1).relu();
        return head.forward(h2 + h0); // skip connection from stage 0
    }
}
