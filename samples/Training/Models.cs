using Pippy;
using Pippy.Schedules;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Training;

/// <summary>A pre-norm MLP block with a residual connection.</summary>
public sealed class Block : Module<Tensor, Tensor>
{
    private readonly LayerNorm norm;
    private readonly Linear expand;
    private readonly Linear contract;

    public Block(long width) : base(nameof(Block))
    {
        norm = LayerNorm(width);
        expand = Linear(width, 4 * width);
        contract = Linear(4 * width, width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => x + contract.forward(functional.gelu(expand.forward(norm.forward(x))));
}

/// <summary>A small language model on four pipeline stages (1F1B): embeddings and blocks divided in four, the head tied to the embedding.</summary>
[Pipeline(Schedule = ScheduleKind.OneFOneB, Microbatches = 4)]
public sealed partial class LanguageModel4 : Module<Tensor, Tensor>
{
    [TiedWeight("embedding")] private readonly Embedding tokens;
    [SplitInto(4)] private readonly ModuleList<Block> blocks;
    private readonly LayerNorm finalNorm;
    [TiedWeight("embedding")] private readonly Linear head;

    public LanguageModel4(int vocabulary, int width, int depth) : base(nameof(LanguageModel4))
    {
        tokens = Embedding(vocabulary, width);
        init.normal_(tokens.weight!, std: 0.02); // small logits at the start, as GPT initializes embeddings
        blocks = new ModuleList<Block>();
        for (int i = 0; i < depth; i++) blocks.Add(new Block(width));
        finalNorm = LayerNorm(width);
        head = Linear(width, vocabulary, hasBias: false);
        head.weight = tokens.weight!;
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids)
    {
        var x = tokens.forward(ids);
        foreach (var block in blocks) x = block.forward(x);
        return head.forward(finalNorm.forward(x));
    }
}

/// <summary>The same model on two pipeline stages, for two data-parallel pipelines on four ranks.</summary>
[Pipeline(Schedule = ScheduleKind.OneFOneB, Microbatches = 4)]
public sealed partial class LanguageModel2 : Module<Tensor, Tensor>
{
    [TiedWeight("embedding")] private readonly Embedding tokens;
    [SplitInto(2)] private readonly ModuleList<Block> blocks;
    private readonly LayerNorm finalNorm;
    [TiedWeight("embedding")] private readonly Linear head;

    public LanguageModel2(int vocabulary, int width, int depth) : base(nameof(LanguageModel2))
    {
        tokens = Embedding(vocabulary, width);
        init.normal_(tokens.weight!, std: 0.02); // small logits at the start, as GPT initializes embeddings
        blocks = new ModuleList<Block>();
        for (int i = 0; i < depth; i++) blocks.Add(new Block(width));
        finalNorm = LayerNorm(width);
        head = Linear(width, vocabulary, hasBias: false);
        head.weight = tokens.weight!;
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids)
    {
        var x = tokens.forward(ids);
        foreach (var block in blocks) x = block.forward(x);
        return head.forward(finalNorm.forward(x));
    }
}
