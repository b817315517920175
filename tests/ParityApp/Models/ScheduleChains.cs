using Pippy;
using Pippy.Schedules;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>The layers of the schedule scenarios: a chain of square linear layers.</summary>
public static class Chain
{
    public static ModuleList<Linear> Layers(int count)
    {
        var layers = new ModuleList<Linear>();
        for (int i = 0; i < count; i++) layers.Add(Linear(6, 6));
        return layers;
    }
}

// One model per schedule and placement: the same forward, its list of layers divided into stages by [SplitInto].

[Pipeline(Schedule = ScheduleKind.OneFOneB, Microbatches = 4)]
public sealed partial class OneFOneBChain : Module<Tensor, Tensor>
{
    [SplitInto(4)] private readonly ModuleList<Linear> layers = Chain.Layers(6);
    public OneFOneBChain() : base(nameof(OneFOneBChain)) { RegisterComponents(); }
    public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x).tanh(); return x; }
}

[Pipeline(Schedule = ScheduleKind.Interleaved1F1B, StagesPerRank = 2, Microbatches = 4)]
public sealed partial class InterleavedChain : Module<Tensor, Tensor>
{
    [SplitInto(8)] private readonly ModuleList<Linear> layers = Chain.Layers(8);
    public InterleavedChain() : base(nameof(InterleavedChain)) { RegisterComponents(); }
    public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x).tanh(); return x; }
}

[Pipeline(Schedule = ScheduleKind.LoopedBFS, StagesPerRank = 2, Microbatches = 3)]
public sealed partial class LoopedBfsChain : Module<Tensor, Tensor>
{
    [SplitInto(4)] private readonly ModuleList<Linear> layers = Chain.Layers(5);
    public LoopedBfsChain() : base(nameof(LoopedBfsChain)) { RegisterComponents(); }
    public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x).tanh(); return x; }
}

[Pipeline(Schedule = ScheduleKind.InterleavedZeroBubble, Microbatches = 4)]
public sealed partial class ZeroBubbleChain : Module<Tensor, Tensor>
{
    [SplitInto(4)] private readonly ModuleList<Linear> layers = Chain.Layers(4);
    public ZeroBubbleChain() : base(nameof(ZeroBubbleChain)) { RegisterComponents(); }
    public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x).tanh(); return x; }
}

[Pipeline(Schedule = ScheduleKind.InterleavedZeroBubble, StagesPerRank = 2, Microbatches = 4)]
public sealed partial class InterleavedZeroBubbleChain : Module<Tensor, Tensor>
{
    [SplitInto(4)] private readonly ModuleList<Linear> layers = Chain.Layers(4);
    public InterleavedZeroBubbleChain() : base(nameof(InterleavedZeroBubbleChain)) { RegisterComponents(); }
    public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x).tanh(); return x; }
}

[Pipeline(Schedule = ScheduleKind.ZeroBubbleV, StagesPerRank = 2, Microbatches = 4)]
public sealed partial class ZeroBubbleVChain : Module<Tensor, Tensor>
{
    [SplitInto(8)] private readonly ModuleList<Linear> layers = Chain.Layers(8);
    public ZeroBubbleVChain() : base(nameof(ZeroBubbleVChain)) { RegisterComponents(); }
    public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x).tanh(); return x; }
}

/// <summary>A custom table from Schedules/custom.csv: 1F1B by hand on two ranks, with an idle first slot on rank 1.</summary>
[Pipeline(ScheduleFile = "custom.csv")]
public sealed partial class CustomChain : Module<Tensor, Tensor>
{
    [SplitInto(2)] private readonly ModuleList<Linear> layers = Chain.Layers(3);
    public CustomChain() : base(nameof(CustomChain)) { RegisterComponents(); }
    public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x).tanh(); return x; }
}

[Pipeline(Schedule = ScheduleKind.DualPipeV, StagesPerRank = 2, Microbatches = 8)]
public sealed partial class DualPipeVChain : Module<Tensor, Tensor>
{
    [SplitInto(8)] private readonly ModuleList<Linear> layers = Chain.Layers(8);
    public DualPipeVChain() : base(nameof(DualPipeVChain)) { RegisterComponents(); }
    public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x).tanh(); return x; }
}

// The same schedules on the other rank count (each schedule is tested on 2 and on 4 ranks).

[Pipeline(Schedule = ScheduleKind.OneFOneB, Microbatches = 4)]
public sealed partial class OneFOneBOnTwo : Module<Tensor, Tensor>
{
    [SplitInto(2)] private readonly ModuleList<Linear> layers = Chain.Layers(3);
    public OneFOneBOnTwo() : base(nameof(OneFOneBOnTwo)) { RegisterComponents(); }
    public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x).tanh(); return x; }
}

[Pipeline(Schedule = ScheduleKind.Interleaved1F1B, StagesPerRank = 2, Microbatches = 4)]
public sealed partial class InterleavedOnTwo : Module<Tensor, Tensor>
{
    [SplitInto(4)] private readonly ModuleList<Linear> layers = Chain.Layers(4);
    public InterleavedOnTwo() : base(nameof(InterleavedOnTwo)) { RegisterComponents(); }
    public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x).tanh(); return x; }
}

[Pipeline(Schedule = ScheduleKind.LoopedBFS, StagesPerRank = 2, Microbatches = 3)]
public sealed partial class LoopedBfsOnFour : Module<Tensor, Tensor>
{
    [SplitInto(8)] private readonly ModuleList<Linear> layers = Chain.Layers(8);
    public LoopedBfsOnFour() : base(nameof(LoopedBfsOnFour)) { RegisterComponents(); }
    public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x).tanh(); return x; }
}

[Pipeline(Schedule = ScheduleKind.InterleavedZeroBubble, Microbatches = 4)]
public sealed partial class ZeroBubbleOnTwo : Module<Tensor, Tensor>
{
    [SplitInto(2)] private readonly ModuleList<Linear> layers = Chain.Layers(3);
    public ZeroBubbleOnTwo() : base(nameof(ZeroBubbleOnTwo)) { RegisterComponents(); }
    public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x).tanh(); return x; }
}

[Pipeline(Schedule = ScheduleKind.InterleavedZeroBubble, StagesPerRank = 2, Microbatches = 4)]
public sealed partial class InterleavedZeroBubbleOnFour : Module<Tensor, Tensor>
{
    [SplitInto(8)] private readonly ModuleList<Linear> layers = Chain.Layers(8);
    public InterleavedZeroBubbleOnFour() : base(nameof(InterleavedZeroBubbleOnFour)) { RegisterComponents(); }
    public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x).tanh(); return x; }
}

[Pipeline(Schedule = ScheduleKind.ZeroBubbleV, StagesPerRank = 2, Microbatches = 4)]
public sealed partial class ZeroBubbleVOnTwo : Module<Tensor, Tensor>
{
    [SplitInto(4)] private readonly ModuleList<Linear> layers = Chain.Layers(4);
    public ZeroBubbleVOnTwo() : base(nameof(ZeroBubbleVOnTwo)) { RegisterComponents(); }
    public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x).tanh(); return x; }
}

[Pipeline(Schedule = ScheduleKind.DualPipeV, StagesPerRank = 2, Microbatches = 4)]
public sealed partial class DualPipeVOnTwo : Module<Tensor, Tensor>
{
    [SplitInto(4)] private readonly ModuleList<Linear> layers = Chain.Layers(5);
    public DualPipeVOnTwo() : base(nameof(DualPipeVOnTwo)) { RegisterComponents(); }
    public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x).tanh(); return x; }
}

/// <summary>Four equal stages of 16 MiB of weights each, for measuring what each rank keeps.</summary>
[Pipeline(Schedule = ScheduleKind.OneFOneB, Microbatches = 4)]
public sealed partial class WideChain : Module<Tensor, Tensor>
{
    [SplitInto(4)] private readonly ModuleList<Linear> layers = new(Linear(2048, 2048), Linear(2048, 2048), Linear(2048, 2048), Linear(2048, 2048));
    public WideChain() : base(nameof(WideChain)) { RegisterComponents(); }
    public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x).tanh(); return x; }
}
