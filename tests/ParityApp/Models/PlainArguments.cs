using Pippy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>What the last stage does with the output, chosen per call.</summary>
public enum OutputMode
{
    Plain,
    Shift,
    Negate,
}

/// <summary>
/// A forward with plain (non-tensor) arguments besides its tensors, six parameters in all (TorchSharp's most): a flag,
/// a count, a number and an enum, read by different stages of four (mode by the first and the last), with an optional mask.
/// Stage 1 assigns its own copy of <c>scale</c>, and runs a layer <c>repeats</c> times (none, once or twice).
/// </summary>
[Pipeline(Microbatches = 4)]
public sealed partial class PlainArguments : Module<Tensor, Tensor?, bool, int, double, OutputMode, Tensor>
{
    [SplitEnd] private readonly Linear first;
    private readonly Linear middle;
    [SplitEnd] private readonly Linear mixer;
    [SplitEnd] private readonly Linear gate;
    private readonly Linear last;

    public PlainArguments() : base(nameof(PlainArguments))
    {
        first = Linear(10, 16);
        middle = Linear(16, 16);
        mixer = Linear(16, 16);
        gate = Linear(16, 16);
        last = Linear(16, 4);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor? mask, bool causal, int repeats, double scale, OutputMode mode)
    {
        var h = first.forward(x).tanh();
        if (mode == OutputMode.Shift) h = h + 0.5;
        scale = scale * 2;
        for (int i = 0; i < repeats; i++) h = middle.forward(h).tanh() * scale;
        h = mixer.forward(h);
        if (mask is not null) h = h * mask;
        if (causal) h = h.cumsum(1) / 16;
        h = gate.forward(h).tanh();
        var y = last.forward(h);
        return mode == OutputMode.Negate ? -y : y;
    }
}
