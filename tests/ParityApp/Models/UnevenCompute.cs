using Pippy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>A block that applies its layer several times: the same parameters, more compute.</summary>
public sealed class RepeatedLayer : Module<Tensor, Tensor>
{
    private readonly Linear layer = Linear(128, 128);
    private readonly int times;

    public RepeatedLayer(int times) : base(nameof(RepeatedLayer))
    {
        this.times = times;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        for (int i = 0; i < times; i++) x = layer.forward(x).tanh();
        return x;
    }
}

/// <summary>Six blocks of equal size whose last two compute 12 times as much: balanced by parameters 3 + 3, by time 5 + 1.</summary>
[Pipeline(Microbatches = 2)]
public sealed partial class UnevenCompute : Module<Tensor, Tensor>
{
    [SplitInto(2)] private readonly ModuleList<RepeatedLayer> blocks = new(
        new RepeatedLayer(1), new RepeatedLayer(1), new RepeatedLayer(1), new RepeatedLayer(1), new RepeatedLayer(12), new RepeatedLayer(12));

    public UnevenCompute() : base(nameof(UnevenCompute)) { RegisterComponents(); }

    public override Tensor forward(Tensor x)
    {
        foreach (var block in blocks) x = block.forward(x);
        return x;
    }
}
