using System;
using Pippy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>A layer that throws on a chosen call of its forward (0 = never): a failure inside a stage.</summary>
public sealed class Bomb : Module<Tensor, Tensor>
{
    private readonly Linear layer = Linear(6, 6);
    public static int ExplodeOnCall;
    private int _calls;

    public Bomb() : base(nameof(Bomb)) { RegisterComponents(); }

    public override Tensor forward(Tensor x)
    {
        if (++_calls == ExplodeOnCall) throw new InvalidOperationException($"the bomb went off on forward call {_calls}");
        return layer.forward(x);
    }
}

/// <summary>Three stages; the middle one holds the bomb.</summary>
[Pipeline(Microbatches = 4)]
public sealed partial class Faulty : Module<Tensor, Tensor>
{
    [SplitEnd] private readonly Linear first = Linear(6, 6);
    [SplitEnd] private readonly Bomb middle = new();
    private readonly Linear last = Linear(6, 6);

    public Faulty() : base(nameof(Faulty)) { RegisterComponents(); }

    public override Tensor forward(Tensor x)
    {
        x = first.forward(x).tanh();
        x = middle.forward(x).tanh();
        return last.forward(x);
    }
}

/// <summary>Stage 0 hands over 5 features where stage 1's layer takes 6: a boundary the stages disagree on.</summary>
[Pipeline(Microbatches = 2)]
public sealed partial class Mismatched : Module<Tensor, Tensor>
{
    [SplitEnd] private readonly Linear first = Linear(6, 5);
    private readonly Linear second = Linear(6, 3);

    public Mismatched() : base(nameof(Mismatched)) { RegisterComponents(); }

    public override Tensor forward(Tensor x)
    {
        var hidden = first.forward(x).tanh();
        return second.forward(hidden);
    }
}

/// <summary>A width from the constructor: ranks that pass different widths build different models.</summary>
[Pipeline(Microbatches = 2)]
public sealed partial class Configured : Module<Tensor, Tensor>
{
    [SplitEnd] private readonly Linear first;
    private readonly Linear second;

    public Configured(int width) : base(nameof(Configured))
    {
        first = Linear(6, width);
        second = Linear(width, 3);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var hidden = first.forward(x).tanh();
        return second.forward(hidden);
    }
}

/// <summary>
/// A layer whose backward can stall: the tensor of its chosen forward call (0 = none) goes through a function whose
/// backward sleeps for <see cref="Stall"/>, so that one rank is held after the other ranks have finished their
/// actions (a rank that never joins the collectives at the end of a step).
/// </summary>
public sealed class Staller : Module<Tensor, Tensor>
{
    private readonly Linear layer = Linear(6, 6);
    public static int StallOnCall;
    public static TimeSpan Stall = TimeSpan.FromSeconds(60);
    private int _calls;

    public Staller() : base(nameof(Staller)) { RegisterComponents(); }

    public override Tensor forward(Tensor x)
    {
        var y = layer.forward(x);
        return ++_calls == StallOnCall ? SlowBackward.apply(y) : y;
    }

    private sealed class SlowBackward : TorchSharp.torch.autograd.SingleTensorFunction<SlowBackward>
    {
        public override string Name => nameof(SlowBackward);

        public override Tensor forward(TorchSharp.torch.autograd.AutogradContext ctx, params object[] vars) => ((Tensor)vars[0]).clone();

        public override System.Collections.Generic.List<Tensor> backward(TorchSharp.torch.autograd.AutogradContext ctx, Tensor grad_output)
        {
            System.Threading.Thread.Sleep(Stall);
            return new() { grad_output };
        }
    }
}

/// <summary>
/// Four stages, the first holding the staller. As ZB-V on 2 ranks (the build-time table), rank 0 holds stages 0 and 3,
/// so the loss broadcast's root is the rank whose last backward of stage 0 stalls; interleaved on 2 ranks, rank 0
/// holds stages 0 and 2 and the last stage is on rank 1.
/// </summary>
[Pipeline(Schedule = Pippy.Schedules.ScheduleKind.ZeroBubbleV, StagesPerRank = 2, Microbatches = 4)]
public sealed partial class Stalling : Module<Tensor, Tensor>
{
    [SplitEnd] private readonly Staller first = new();
    [SplitEnd] private readonly Linear second = Linear(6, 6);
    [SplitEnd] private readonly Linear third = Linear(6, 6);
    private readonly Linear fourth = Linear(6, 6);

    public Stalling() : base(nameof(Stalling)) { RegisterComponents(); }

    public override Tensor forward(Tensor x)
    {
        x = first.forward(x).tanh();
        x = second.forward(x).tanh();
        x = third.forward(x).tanh();
        return fourth.forward(x);
    }
}
