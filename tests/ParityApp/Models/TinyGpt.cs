using Pippy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>A pre-norm MLP block with a residual connection.</summary>
public sealed class GptBlock : Module<Tensor, Tensor>
{
    private readonly LayerNorm norm;
    private readonly Linear expand;
    private readonly Linear contract;

    public GptBlock(long width) : base(nameof(GptBlock))
    {
        norm = LayerNorm(width);
        expand = Linear(width, 4 * width);
        contract = Linear(4 * width, width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => x + contract.forward(functional.gelu(expand.forward(norm.forward(x))));
}

/// <summary>
/// A GPT-like model on four stages: embeddings | blocks, first half | blocks, second half and final norm | head.
/// The token embedding and the output head share one weight: tied in the constructor for the plain model, and
/// marked [TiedWeight] so that the pipeline keeps the copies on stages 0 and 3 identical.
/// </summary>
[Pipeline(Microbatches = 4)]
public sealed partial class TinyGpt : Module<Tensor, Tensor>
{
    [TiedWeight("embedding")] private readonly Embedding tokens;
    [SplitEnd] private readonly Embedding positions;
    [SplitInto(2)] private readonly ModuleList<GptBlock> blocks;
    [SplitEnd] private readonly LayerNorm finalNorm;
    [TiedWeight("embedding")] private readonly Linear head;

    public TinyGpt(int vocabulary = 32, int width = 16, int depth = 5, int context = 8) : base(nameof(TinyGpt))
    {
        tokens = Embedding(vocabulary, width);
        positions = Embedding(context, width);
        blocks = new ModuleList<GptBlock>();
        for (int i = 0; i < depth; i++) blocks.Add(new GptBlock(width));
        finalNorm = LayerNorm(width);
        head = Linear(width, vocabulary, hasBias: false);
        head.weight = tokens.weight!; // the tie of the plain model
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids)
    {
        var where = arange(ids.shape[1], device: ids.device).unsqueeze(0);
        var x = tokens.forward(ids) + positions.forward(where);
        foreach (var block in blocks)
            x = block.forward(x);
        x = finalNorm.forward(x);
        return head.forward(x);
    }
}

/// <summary>The GPT-like model on two stages (blocks divided in two), embedding and head tied across them: for data parallelism x pipeline.</summary>
[Pipeline(Microbatches = 4)]
public sealed partial class TinyGptTwoStages : Module<Tensor, Tensor>
{
    [TiedWeight("embedding")] private readonly Embedding tokens;
    private readonly Embedding positions;
    [SplitInto(2)] private readonly ModuleList<GptBlock> blocks;
    private readonly LayerNorm finalNorm;
    [TiedWeight("embedding")] private readonly Linear head;

    public TinyGptTwoStages(int vocabulary = 32, int width = 16, int depth = 3, int context = 8) : base(nameof(TinyGptTwoStages))
    {
        tokens = Embedding(vocabulary, width);
        positions = Embedding(context, width);
        blocks = new ModuleList<GptBlock>();
        for (int i = 0; i < depth; i++) blocks.Add(new GptBlock(width));
        finalNorm = LayerNorm(width);
        head = Linear(width, vocabulary, hasBias: false);
        head.weight = tokens.weight!;
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids)
    {
        var where = arange(ids.shape[1], device: ids.device).unsqueeze(0);
        var x = tokens.forward(ids) + positions.forward(where);
        foreach (var block in blocks)
            x = block.forward(x);
        return head.forward(finalNorm.forward(x));
    }
}
