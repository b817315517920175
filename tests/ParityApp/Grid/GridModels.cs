using Pippy;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Grid;

// The model features of the parity grid, each a model of 4 stages so that every placement fits it: one stage per
// rank on 4 ranks, 2 per rank looped or in a V on 2 ranks. The schedule and placement are chosen at run time
// (PipelineOptions), so one model runs under every schedule.

/// <summary>Feature "chain": each stage reads only the one before.</summary>
[Pipeline(Microbatches = 4)]
public sealed partial class GridChain : Module<Tensor, Tensor>
{
    [SplitEnd] private readonly Linear a;
    [SplitEnd] private readonly Linear b;
    [SplitEnd] private readonly Linear c;
    private readonly Linear d;

    public GridChain() : base(nameof(GridChain))
    {
        a = Linear(6, 8); b = Linear(8, 8); c = Linear(8, 8); d = Linear(8, 4);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h = a.forward(x).tanh();
        h = b.forward(h).tanh();
        h = c.forward(h).tanh();
        return d.forward(h);
    }
}

/// <summary>Feature "fan-out": stage 0's value h0 is read by stages 1, 2 and 3 (skip connections, gradients summed).</summary>
[Pipeline(Microbatches = 4)]
public sealed partial class GridFanOut : Module<Tensor, Tensor>
{
    [SplitEnd] private readonly Linear a;
    [SplitEnd] private readonly Linear b;
    [SplitEnd] private readonly Linear c;
    private readonly Linear d;

    public GridFanOut() : base(nameof(GridFanOut))
    {
        a = Linear(6, 8); b = Linear(8, 8); c = Linear(8, 8); d = Linear(8, 4);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h0 = a.forward(x).tanh();
        var h1 = functional.relu(b.forward(h0));
        var h2 = functional.relu(c.forward(h1)) + h0;
        return d.forward(h2) + 0.5 * h0.narrow(1, 0, 4);
    }
}

/// <summary>Feature "no-grad value": token ids in, and a mask made on stage 0 that stages 2 and 3 read (no gradient goes back for either).</summary>
[Pipeline(Microbatches = 4)]
public sealed partial class GridTokens : Module<Tensor, Tensor>
{
    [SplitEnd] private readonly Embedding tokens;
    [SplitEnd] private readonly Linear b;
    [SplitEnd] private readonly Linear c;
    private readonly Linear d;

    public GridTokens() : base(nameof(GridTokens))
    {
        tokens = Embedding(12, 8); b = Linear(8, 8); c = Linear(8, 8); d = Linear(8, 4);
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids)
    {
        var mask = (ids > 3).to_type(ScalarType.Float32).unsqueeze(-1);
        var h = tokens.forward(ids);
        h = b.forward(h).tanh();
        h = c.forward(h).tanh() * mask;
        return d.forward(h * mask).sum(1);
    }
}

/// <summary>How the last stage of <see cref="GridThreeInputs"/> mixes its value, chosen per call.</summary>
public enum GridMix
{
    Product,
    Sum,
    Difference,
}

/// <summary>
/// Feature "several inputs, tuple output": three tensor inputs and three plain arguments read on different stages (the
/// flag by the first and the second, the number by the third, the enum by the third and the last), two outputs.
/// </summary>
[Pipeline(Microbatches = 4)]
public sealed partial class GridThreeInputs : Module<Tensor, Tensor, Tensor, bool, double, GridMix, (Tensor, Tensor)>
{
    [SplitEnd] private readonly Linear a;
    [SplitEnd] private readonly Linear b;
    [SplitEnd] private readonly Linear c;
    private readonly Linear d;

    public GridThreeInputs() : base(nameof(GridThreeInputs))
    {
        a = Linear(6, 8); b = Linear(8, 8); c = Linear(8, 8); d = Linear(8, 4);
        RegisterComponents();
    }

    public override (Tensor, Tensor) forward(Tensor x, Tensor y, Tensor z, bool flip, double scale, GridMix mix)
    {
        var h = a.forward(flip ? -x : x).tanh();
        var g = b.forward(h) + (flip ? y * 2 : y);
        var k = c.forward(g.tanh() * scale);
        k = mix switch { GridMix.Product => k * z, GridMix.Sum => k + z, _ => k - z };
        var output = d.forward(k);
        return (mix == GridMix.Difference ? output.tanh() : output, g.square().sum(1, keepdim: true));
    }
}

/// <summary>
/// Feature "tied weight": the embedding (stage 0) and the output head (stage 3) share a weight. The pipeline's model is
/// built untied, so the tie is Pippy's alone (the lowest copy's value, gradients summed); the plain model ties them in
/// its constructor. Stage 3 runs on another rank with one stage per rank and looped, and on rank 0 with stage 0 in a V.
/// </summary>
[Pipeline(Microbatches = 4)]
public sealed partial class GridTied : Module<Tensor, Tensor>
{
    [TiedWeight("embedding")][SplitEnd] private readonly Embedding tokens;
    [SplitEnd] private readonly Linear b;
    [SplitEnd] private readonly Linear c;
    [TiedWeight("embedding")] private readonly Linear head;

    public GridTied() : this(tie: false) { }

    public GridTied(bool tie) : base(nameof(GridTied))
    {
        tokens = Embedding(12, 8); b = Linear(8, 8); c = Linear(8, 8);
        head = Linear(8, 12, hasBias: false);
        if (tie) head.weight = tokens.weight!;
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids)
    {
        var h = tokens.forward(ids);
        h = b.forward(h).tanh();
        h = c.forward(h).tanh();
        return head.forward(h).sum(1);
    }
}

/// <summary>
/// Feature "shared submodule": one Linear called on stage 0 and on stage 2 (replicated, gradients summed), and one
/// module without parameters (an activation) called on stages 1 and 3.
/// </summary>
[Pipeline(Microbatches = 4)]
public sealed partial class GridShared : Module<Tensor, Tensor>
{
    [SplitEnd] private readonly Linear a;
    private readonly Linear shared;
    private readonly Module<Tensor, Tensor> activation;
    [SplitEnd] private readonly Linear b;
    [SplitEnd] private readonly Linear c;
    private readonly Linear d;

    public GridShared() : base(nameof(GridShared))
    {
        a = Linear(6, 8); shared = Linear(8, 8); activation = SiLU(); b = Linear(8, 8); c = Linear(8, 8); d = Linear(8, 4);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h = shared.forward(a.forward(x).tanh());
        h = activation.forward(b.forward(h));
        h = shared.forward(c.forward(h)).tanh();
        return activation.forward(d.forward(h));
    }
}

/// <summary>Feature "[SplitInto] list": six blocks divided into four stages by parameter count.</summary>
[Pipeline(Microbatches = 4)]
public sealed partial class GridList : Module<Tensor, Tensor>
{
    private readonly Linear input;
    [SplitInto(4)] private readonly ModuleList<Linear> blocks;
    private readonly Linear output;

    public GridList() : base(nameof(GridList))
    {
        input = Linear(6, 8);
        blocks = new ModuleList<Linear>();
        for (int i = 0; i < 6; i++) blocks.Add(Linear(8, 8));
        output = Linear(8, 4);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h = input.forward(x);
        foreach (var block in blocks) h = block.forward(h).tanh();
        return output.forward(h);
    }
}

/// <summary>
/// Feature "helpers and using": forward as TorchSharp users write it. It calls the model's own methods (Block uses
/// submodules; [SplitEnd] on b and c, which only Block and Head name), a property (Scale), declares its temporaries with
/// <c>using var</c> inside a dispose scope, and hands its result out through the scope.
/// </summary>
[Pipeline(Microbatches = 4)]
public sealed partial class GridHelpers : Module<Tensor, Tensor>
{
    [SplitEnd] private readonly Linear a;
    [SplitEnd] private readonly Linear b;
    [SplitEnd] private readonly Linear c;
    private readonly Linear d;
    private readonly LayerNorm norm;

    public GridHelpers() : base(nameof(GridHelpers))
    {
        a = Linear(6, 8); b = Linear(8, 8); c = Linear(8, 8); d = Linear(8, 4); norm = LayerNorm(8);
        RegisterComponents();
    }

    private double Scale => 0.5;

    private Tensor Block(Linear layer, Tensor x) => norm.forward(layer.forward(x)).tanh();

    private Tensor Head(Tensor h) => d.forward(h) * Scale;

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        using var h0 = a.forward(x).tanh();
        using var h1 = Block(b, h0);
        using var h2 = Block(c, h1) + h0;
        return scope.MoveToOuter(Head(h2));
    }
}

/// <summary>
/// Feature "Sequential": forward is one Sequential of named children, divided into four stages by [SplitInto(4)]; the
/// stages keep the model's parameter names (layers.fc1.weight), so checkpoints are interchangeable with the plain model's.
/// </summary>
[Pipeline(Microbatches = 4)]
public sealed partial class GridSequential : Module<Tensor, Tensor>
{
    [SplitInto(4)] private readonly Sequential layers = Sequential(
        ("fc1", Linear(6, 8)), ("act1", Tanh()),
        ("fc2", Linear(8, 8)), ("act2", Tanh()),
        ("fc3", Linear(8, 8)), ("act3", Tanh()),
        ("fc4", Linear(8, 4)));

    public GridSequential() : base(nameof(GridSequential)) => RegisterComponents();

    public override Tensor forward(Tensor x) => layers.forward(x);
}

/// <summary>A block of two tensors: the running value and a skip, mixed (<see cref="GridRecompute"/>).</summary>
public sealed class GridGate : Module<Tensor, Tensor, Tensor>
{
    private readonly Linear layer;

    public GridGate(string name) : base(name)
    {
        layer = Linear(8, 8);
        RegisterComponents();
    }

    public override Tensor forward(Tensor h, Tensor skip) => (layer.forward(h) + 0.5 * skip).tanh();
}

/// <summary>
/// Feature "recompute-blocks": [Recompute] on a block of the first stage, whose input needs no gradient (its weights
/// still get theirs), on a divided module list of two-tensor blocks (each block recomputed on its own, its skip input
/// crossing stages), and on the last stage's head.
/// </summary>
[Pipeline(Microbatches = 4)]
public sealed partial class GridRecompute : Module<Tensor, Tensor>
{
    [Recompute] private readonly Linear input;
    [Recompute, SplitInto(4)] private readonly ModuleList<GridGate> blocks;
    [Recompute] private readonly Linear output;

    public GridRecompute() : base(nameof(GridRecompute))
    {
        input = Linear(6, 8);
        blocks = new ModuleList<GridGate>();
        for (int i = 0; i < 6; i++) blocks.Add(new GridGate($"gate{i}"));
        output = Linear(8, 4);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h = input.forward(x).tanh();
        var skip = h;
        foreach (var block in blocks) h = block.forward(h, skip);
        return output.forward(h);
    }
}
