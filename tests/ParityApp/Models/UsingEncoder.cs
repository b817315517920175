using System;
using Pippy;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>
/// A Transformer encoder written in ordinary TorchSharp style: forward opens a dispose scope and declares its tensors
/// with <c>using var</c>; the padding mask made in stage 0 is read by stage 1 (so it leaves stage 0), the hidden state
/// crosses each split, an intermediate of stage 1 is freed with its stage, and the last statement hands the result
/// out of the scope through the scope variable.
/// </summary>
[Pipeline(Microbatches = 4)]
public sealed partial class UsingEncoder : Module<Tensor, Tensor, Tensor>
{
    private readonly Linear input;
    [SplitEnd] private readonly EncoderLayer layer0;
    private readonly LayerNorm norm;
    [SplitEnd] private readonly EncoderLayer layer1;
    private readonly Linear head;

    public UsingEncoder(int features = 12, int dim = 16, int heads = 2, int outputs = 3) : base(nameof(UsingEncoder))
    {
        input = Linear(features, dim);
        layer0 = new EncoderLayer(dim, heads);
        norm = LayerNorm(dim);
        layer1 = new EncoderLayer(dim, heads);
        head = Linear(dim, outputs);
        RegisterComponents();
    }

    /// <param name="x">[batch, time, features]</param>
    /// <param name="keep">[batch, time]: 1 for a real position, 0 for padding</param>
    public override Tensor forward(Tensor x, Tensor keep)
    {
        using var scope = torch.NewDisposeScope();
        // Additive attention mask over the keys: 0 to attend, -1e9 for padding; [batch, 1, 1, time].
        using var mask = ((1 - keep) * -1e9).unsqueeze(1).unsqueeze(1);
        using var h0 = input.forward(x);
        using var h1 = layer0.forward(h0, mask);
        using var normed = norm.forward(h1);
        using var h2 = layer1.forward(normed, mask);
        using var weights = keep.unsqueeze(-1);
        using var pooled = (h2 * weights).sum(1) / weights.sum(1);
        return scope.MoveToOuter(head.forward(pooled));
    }
}

/// <summary>Pre-norm self-attention and feed-forward with residuals, its temporaries freed by using declarations.</summary>
public sealed class EncoderLayer : Module<Tensor, Tensor, Tensor>
{
    private readonly int heads;
    private readonly LayerNorm norm1;
    private readonly Linear qkv;
    private readonly Linear project;
    private readonly LayerNorm norm2;
    private readonly Linear up;
    private readonly Linear down;

    public EncoderLayer(int dim, int heads) : base(nameof(EncoderLayer))
    {
        this.heads = heads;
        norm1 = LayerNorm(dim);
        qkv = Linear(dim, 3 * dim);
        project = Linear(dim, dim);
        norm2 = LayerNorm(dim);
        up = Linear(dim, 2 * dim);
        down = Linear(2 * dim, dim);
        RegisterComponents();
    }

    /// <param name="x">[batch, time, dim]</param>
    /// <param name="mask">additive, broadcast to [batch, heads, time, time]</param>
    public override Tensor forward(Tensor x, Tensor mask)
    {
        long batch = x.shape[0], time = x.shape[1], dim = x.shape[2], headDim = dim / heads;
        using var n1 = norm1.forward(x);
        using var parts = qkv.forward(n1).view(batch, time, 3, heads, headDim).permute(2, 0, 3, 1, 4);
        using var q = parts[0];
        using var k = parts[1];
        using var v = parts[2];
        using var scores = q.matmul(k.transpose(-2, -1)) / Math.Sqrt(headDim) + mask;
        using var attention = scores.softmax(-1);
        using var mixed = attention.matmul(v).transpose(1, 2).reshape(batch, time, dim);
        using var a = x + project.forward(mixed);
        using var n2 = norm2.forward(a);
        using var hidden = up.forward(n2).relu();
        return a + down.forward(hidden);
    }
}
