using Pippy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>
/// Four stages cut by each kind of split point: an inline <c>PipelineSplit.Here();</c> after the embedding, a
/// [SplitEnd] submodule, and a [SplitBegin] submodule that opens the last stage; stage 2 holds no submodule at all
/// (only the gate's arithmetic), and h0 skips from stage 0 to stage 3.
/// </summary>
[Pipeline(Microbatches = 4)]
public sealed partial class MarkedSplits : Module<Tensor, Tensor>
{
    private readonly Linear embed;
    [SplitEnd] private readonly Linear first;
    [SplitBegin] private readonly Linear second;
    private readonly Linear head;

    public MarkedSplits() : base(nameof(MarkedSplits))
    {
        embed = Linear(16, 32);
        first = Linear(32, 32);
        second = Linear(32, 32);
        head = Linear(32, 8);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h0 = embed.forward(x).tanh();
        PipelineSplit.Here();                    // stage 0 ends here
        var h1 = first.forward(h0).relu();       // [SplitEnd]: stage 1 ends after this statement
        var gated = h1 * h1.sigmoid();           // stage 2
        var h2 = second.forward(gated).relu();   // [SplitBegin]: stage 3 starts with this statement
        return head.forward(h2 + h0);
    }
}
