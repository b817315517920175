using Pippy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>One value (e) read by every later stage: sent to each of stages 1, 2 and 3, its gradients summed.</summary>
[Pipeline(Microbatches = 3)]
public sealed partial class FanOut : Module<Tensor, Tensor>
{
    [SplitEnd] private readonly Linear encode;
    [SplitEnd] private readonly Linear a;
    [SplitEnd] private readonly Linear b;
    private readonly Linear c;

    public FanOut() : base(nameof(FanOut))
    {
        encode = Linear(12, 24);
        a = Linear(24, 24);
        b = Linear(24, 24);
        c = Linear(24, 6);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var e = encode.forward(x).sigmoid();
        var u = a.forward(e) * e;
        var v = b.forward(u) + e.square();
        return c.forward(v - e);
    }
}
