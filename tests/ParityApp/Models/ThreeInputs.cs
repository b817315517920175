using Pippy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>
/// Three inputs and a tuple output, with locals, arithmetic between module calls, an if/else and a loop that stay
/// inside one stage, and a model field read by a stage.
/// </summary>
[Pipeline(Microbatches = 2)]
public sealed partial class ThreeInputs : Module<Tensor, Tensor, Tensor, (Tensor, Tensor)>
{
    [SplitEnd] private readonly Linear left;
    [SplitEnd] private readonly Linear right;
    private readonly Linear merge;
    private readonly int repeats = 3;

    public ThreeInputs() : base(nameof(ThreeInputs))
    {
        left = Linear(10, 10);
        right = Linear(6, 10);
        merge = Linear(10, 5);
        RegisterComponents();
    }

    public override (Tensor, Tensor) forward(Tensor x, Tensor y, Tensor bias)
    {
        var l = left.forward(x);
        if (l.mean().item<float>() > 100f)
        {
            l = l / 2;
        }
        else
        {
            l = l.tanh();
        }
        var r = right.forward(y) * 0.5 + l;
        Tensor acc = r;
        for (int i = 0; i < repeats; i++)
        {
            acc = acc * 0.9 + r.relu();
        }
        var logits = merge.forward(acc) + bias;
        return (logits, acc.pow(2).mean(new long[] { 1 }));
    }
}
