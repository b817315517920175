using Pippy;
using Pippy.Schedules;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Bert;

/// <summary>
/// Bidirectional multi-head self-attention: every position attends to every real position of its sequence, and no
/// position attends to padding (the additive mask is 0 for real keys and a large negative number for padded ones).
/// </summary>
public sealed class PaddedSelfAttention : Module<Tensor, Tensor, Tensor>
{
    private readonly Linear qkv;
    private readonly Linear projection;
    private readonly long heads;

    public PaddedSelfAttention(long width, long heads) : base(nameof(PaddedSelfAttention))
    {
        this.heads = heads;
        qkv = Linear(width, 3 * width);
        projection = Linear(width, width);
        RegisterComponents();
    }

    /// <param name="x">[batch, time, width]</param>
    /// <param name="keyMask">additive, [batch, 1, 1, time]: broadcast over heads and query positions</param>
    public override Tensor forward(Tensor x, Tensor keyMask)
    {
        long batch = x.shape[0], time = x.shape[1], width = x.shape[2];
        var parts = qkv.forward(x).view(batch, time, 3, heads, width / heads).permute(2, 0, 3, 1, 4); // 3, B, H, T, D
        var attended = functional.scaled_dot_product_attention(parts[0], parts[1], parts[2], keyMask + DistanceBias(time, x.device));
        return projection.forward(attended.transpose(1, 2).reshape(batch, time, width));
    }

    /// <summary>
    /// ALiBi's bias, both ways: head h subtracts 2^-(h+1) per position of distance from a query to a key, so each head
    /// prefers near characters from the first step, and leans less on them the higher it is. Fixed, not learned.
    /// [1, heads, time, time].
    /// </summary>
    private Tensor DistanceBias(long time, Device device)
    {
        var positions = arange(time, device: device);
        var distance = (positions.unsqueeze(0) - positions.unsqueeze(1)).abs().to_type(ScalarType.Float32);
        var slopes = pow(2.0, -(arange(heads, device: device).to_type(ScalarType.Float32) + 1)).view(1, heads, 1, 1);
        return -slopes * distance.view(1, 1, time, time);
    }
}

/// <summary>A pre-norm transformer encoder block: padded self-attention and a 4x MLP, each with a residual connection.</summary>
public sealed class EncoderBlock : Module<Tensor, Tensor, Tensor>
{
    private readonly LayerNorm attentionNorm;
    private readonly PaddedSelfAttention attention;
    private readonly LayerNorm mlpNorm;
    private readonly Linear expand;
    private readonly Linear contract;

    public EncoderBlock(long width, long heads) : base(nameof(EncoderBlock))
    {
        attentionNorm = LayerNorm(width);
        attention = new PaddedSelfAttention(width, heads);
        mlpNorm = LayerNorm(width);
        expand = Linear(width, 4 * width);
        contract = Linear(4 * width, width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor keyMask)
    {
        x = x + attention.forward(attentionNorm.forward(x), keyMask);
        return x + contract.forward(functional.gelu(expand.forward(mlpNorm.forward(x))));
    }
}

/// <summary>
/// A character-level BERT-style encoder: token and position embeddings, encoder blocks divided among 4 stages, a final
/// norm and an output head tied to the token embedding, giving every position a distribution over the characters.
/// forward takes the padded token ids and the padding mask (1 for a real character, 0 for padding); stage 0 turns the
/// mask into the additive key mask that crosses to every later stage with the hidden state (without a gradient).
/// </summary>
[Pipeline(Schedule = ScheduleKind.OneFOneB, Microbatches = 8)]
public sealed partial class CharBert : Module<Tensor, Tensor, Tensor>
{
    /// <summary>Added to the attention scores of padded keys: their softmax weight underflows to exactly 0.</summary>
    private const double Blocked = -1e9;

    [TiedWeight("embedding")] private readonly Embedding tokens;
    private readonly Embedding positions;
    [SplitInto(4)] private readonly ModuleList<EncoderBlock> blocks;
    private readonly LayerNorm finalNorm;
    [TiedWeight("embedding")] private readonly Linear head;

    public CharBert(int vocabulary, int context, int width = 128, int heads = 4, int depth = 4) : base(nameof(CharBert))
    {
        tokens = Embedding(vocabulary, width);
        positions = Embedding(context, width);
        blocks = new ModuleList<EncoderBlock>();
        for (int i = 0; i < depth; i++) blocks.Add(new EncoderBlock(width, heads));
        finalNorm = LayerNorm(width);
        head = Linear(width, vocabulary, hasBias: false);
        head.weight = tokens.weight!;
        RegisterComponents();
    }

    /// <param name="ids">[batch, time] character ids, padded at the end of each sequence</param>
    /// <param name="padding">[batch, time] float: 1 for a real character, 0 for padding</param>
    /// <returns>[batch, time, vocabulary] logits</returns>
    public override Tensor forward(Tensor ids, Tensor padding)
    {
        var keyMask = ((1 - padding) * Blocked).unsqueeze(1).unsqueeze(2);
        var where = arange(ids.shape[1], device: ids.device).unsqueeze(0);
        var x = tokens.forward(ids) + positions.forward(where);
        foreach (var block in blocks)
            x = block.forward(x, keyMask);
        return head.forward(finalNorm.forward(x));
    }
}
