using System.Linq;
using Pippy;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace GpuCheck;

/// <summary>Six 256-wide layers on two stages; the first and the last share one weight (tied across the ranks).</summary>
[Pipeline(Microbatches = 4)]
public sealed partial class GpuTied : Module<Tensor, Tensor>
{
    [TiedWeight("ends")] private readonly Linear first;
    [SplitInto(2)] private readonly ModuleList<Linear> layers;
    [TiedWeight("ends")] private readonly Linear last;

    /// <summary>Built on <paramref name="device"/> (TorchSharp's to() cannot move a module tree whose modules share a weight).</summary>
    public GpuTied(Device device) : base(nameof(GpuTied))
    {
        first = Linear(256, 256, hasBias: false, device: device);
        layers = new ModuleList<Linear>(Enumerable.Range(0, 4).Select(_ => Linear(256, 256, device: device)).ToArray());
        last = Linear(256, 256, hasBias: false, device: device);
        last.weight = first.weight!;
        RegisterComponents();
    }

    /// <summary>
    /// The model on <paramref name="device"/> with the values drawn on the CPU from <paramref name="seed"/>: the same on
    /// every rank and for the one-device reference (torch.manual_seed does not make CUDA's generator repeat here).
    /// </summary>
    public static GpuTied Create(Device device, int seed)
    {
        torch.manual_seed(seed);
        var drawn = new GpuTied(CPU);
        var model = new GpuTied(device);
        var target = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using (no_grad())
            foreach (var (name, value) in drawn.named_parameters()) target[name].copy_(value);
        return model;
    }

    public override Tensor forward(Tensor x)
    {
        x = first.forward(x).tanh();
        foreach (var layer in layers) x = layer.forward(x).tanh();
        return last.forward(x);
    }
}
