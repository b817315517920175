using System.Linq;
using Pippy;
using Pippy.Schedules;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PipelineBench;

/// <summary>
/// Compute-bound layers in stages of equal work. The first stage skips one matrix product of its twelve (its first
/// layer's input gradient: the batch needs none), so the last layer is two thirds as wide, which takes the same one
/// product's worth off the last stage: 11 of 12 on each rank, for 2 stages of 4 layers and for 4 stages of 2 alike.
/// </summary>
public static class Layers
{
    public const int Width = 512, Count = 8, LastWidth = 344;

    public static ModuleList<Linear> Make()
    {
        var layers = new ModuleList<Linear>();
        for (int i = 0; i < Count; i++) layers.Add(Linear(Width, i == Count - 1 ? LastWidth : Width));
        return layers;
    }
}

[Pipeline(Schedule = ScheduleKind.GPipe, Microbatches = 8)]
public sealed partial class GPipeNet : Module<Tensor, Tensor>
{
    [SplitInto(2)] private readonly ModuleList<Linear> layers = Layers.Make();
    public GPipeNet() : base(nameof(GPipeNet)) { RegisterComponents(); }
    public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x).tanh(); return x; }
}

[Pipeline(Schedule = ScheduleKind.OneFOneB, Microbatches = 8)]
public sealed partial class OneFOneBNet : Module<Tensor, Tensor>
{
    [SplitInto(2)] private readonly ModuleList<Linear> layers = Layers.Make();
    public OneFOneBNet() : base(nameof(OneFOneBNet)) { RegisterComponents(); }
    public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x).tanh(); return x; }
}

[Pipeline(Schedule = ScheduleKind.Interleaved1F1B, StagesPerRank = 2, Microbatches = 8)]
public sealed partial class InterleavedNet : Module<Tensor, Tensor>
{
    [SplitInto(4)] private readonly ModuleList<Linear> layers = Layers.Make();
    public InterleavedNet() : base(nameof(InterleavedNet)) { RegisterComponents(); }
    public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x).tanh(); return x; }
}

/// <summary>Tiny stages, so that a step's time is the runtime's own per-action cost.</summary>
[Pipeline(Schedule = ScheduleKind.OneFOneB, Microbatches = 64)]
public sealed partial class TinyNet : Module<Tensor, Tensor>
{
    [SplitEnd] private readonly Linear a = Linear(1, 1);
    private readonly Linear b = Linear(1, 1);
    public TinyNet() : base(nameof(TinyNet)) { RegisterComponents(); }
    public override Tensor forward(Tensor x) { x = a.forward(x); return b.forward(x); }
}

/// <summary>For peak memory: 8 layers of 2048 x 2048 (128 MiB of parameters) on two stages.</summary>
[Pipeline(Schedule = ScheduleKind.OneFOneB, Microbatches = 4)]
public sealed partial class MemoryNet : Module<Tensor, Tensor>
{
    [SplitInto(2)] private readonly ModuleList<Linear> layers = new(Enumerable.Range(0, 8).Select(_ => Linear(2048, 2048)).ToArray());
    public MemoryNet() : base(nameof(MemoryNet)) { RegisterComponents(); }
    public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x).tanh(); return x; }
}
