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
