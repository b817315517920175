using Pippy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace GpuCheck;

/// <summary>Four 256-wide layers on two stages.</summary>
[Pipeline(Microbatches = 4)]
public sealed partial class GpuChain : Module<Tensor, Tensor>
{
    [SplitInto(2)] private readonly ModuleList<Linear> layers = new(Linear(256, 256), Linear(256, 256), Linear(256, 256), Linear(256, 256));
    public GpuChain() : base(nameof(GpuChain)) { RegisterComponents(); }
    public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x).tanh(); return x; }
}
