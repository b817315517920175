using Pippy;
using Pippy.Schedules;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Gpt;

/// <summary>Causal multi-head self-attention (PyTorch's scaled_dot_product_attention with the causal mask).</summary>
public sealed class CausalSelfAttention : Module<Tensor, Tensor>
{
    private readonly Linear qkv;
    private readonly Linear projection;
    private readonly long heads;

    public CausalSelfAttention(long width, long heads) : base(nameof(CausalSelfAttention))
    {
        this.heads = heads;
        qkv = Linear(width, 3 * width);
        projection = Linear(width, width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        long batch = x.shape[0], time = x.shape[1], width = x.shape[2];
        var parts = qkv.forward(x).view(batch, time, 3, heads, width / heads).permute(2, 0, 3, 1, 4); // 3, B, H, T, D
        var attended = functional.scaled_dot_product_attention(parts[0], parts[1], parts[2], is_casual: true);
        return projection.forward(attended.transpose(1, 2).reshape(batch, time, width));
    }
}

/// <summary>A pre-norm transformer block: attention and a 4x MLP, each with a residual connection.</summary>
public sealed class Block : Module<Tensor, Tensor>
{
    private readonly LayerNorm attentionNorm;
    private readonly CausalSelfAttention attention;
    private readonly LayerNorm mlpNorm;
    private readonly Linear expand;
    private readonly Linear contract;

    public Block(long width, long heads) : base(nameof(Block))
    {
        attentionNorm = LayerNorm(width);
        attention = new CausalSelfAttention(width, heads);
        mlpNorm = LayerNorm(width);
        expand = Linear(width, 4 * width);
        contract = Linear(4 * width, width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        x = x + attention.forward(attentionNorm.forward(x));
        return x + contract.forward(functional.gelu(expand.forward(mlpNorm.forward(x))));
    }
}

/// <summary>
/// A character-level GPT: token and position embeddings, transformer blocks divided among 4 stages, a final norm,
/// and an output head tied to the token embedding. Built for 1F1B with 8 microbatches; the sample's --schedule
/// picks another at start.
/// </summary>
[Pipeline(Schedule = ScheduleKind.OneFOneB, Microbatches = 8)]
public sealed partial class CharGpt : Module<Tensor, Tensor>
{
    [TiedWeight("embedding")] private readonly Embedding tokens;
    private readonly Embedding positions;
    [SplitInto(4)] private readonly ModuleList<Block> blocks;
    private readonly LayerNorm finalNorm;
    [TiedWeight("embedding")] private readonly Linear head;

    public CharGpt(int vocabulary, int context, int width = 128, int heads = 4, int depth = 8) : base(nameof(CharGpt))
    {
        Context = context;
        tokens = Embedding(vocabulary, width);
        positions = Embedding(context, width);
        blocks = new ModuleList<Block>();
        for (int i = 0; i < depth; i++) blocks.Add(new Block(width, heads));
        finalNorm = LayerNorm(width);
        head = Linear(width, vocabulary, hasBias: false);
        head.weight = tokens.weight!;
        RegisterComponents();
    }

    /// <summary>The longest sequence the position embedding covers.</summary>
    public int Context { get; }

    public override Tensor forward(Tensor ids)
    {
        var where = arange(ids.shape[1], device: ids.device).unsqueeze(0);
        var x = tokens.forward(ids) + positions.forward(where);
        foreach (var block in blocks)
            x = block.forward(x);
        return head.forward(finalNorm.forward(x));
    }
}
