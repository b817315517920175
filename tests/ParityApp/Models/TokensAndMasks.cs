using Pippy;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>
/// Values without gradients cross the boundary: integer token ids, a float mask made from them, and a detached
/// tensors. Five values cross to stage 1, and only the hidden state gets a gradient message back.
/// </summary>
[Pipeline(Microbatches = 4)]
public sealed partial class TokensAndMasks : Module<Tensor, Tensor>
{
    private readonly Embedding embedding;
    [SplitEnd] private readonly Embedding gates;
    private readonly Embedding position;
    private readonly Linear project;

    public TokensAndMasks() : base(nameof(TokensAndMasks))
    {
        embedding = Embedding(20, 16);
        gates = Embedding(20, 16);
        position = Embedding(20, 16);
        project = Linear(16, 4);
        RegisterComponents();
    }

    public override Tensor forward(Tensor tokens)
    {
        var ids = (tokens + 1).remainder(20);                               // int64: no gradient
        var mask = tokens.gt(3).unsqueeze(-1).to_type(ScalarType.Float32); // float, requires_grad false
        var hidden = embedding.forward(tokens);                             // float, needs a gradient
        var frozen = hidden.detach() * 0.5;                                 // float, detached
        var gate = gates.forward(ids).detach().sigmoid();                   // ends stage 0; detached
        var shifted = hidden + position.forward(ids);
        return project.forward(shifted * mask * gate + frozen).sum(1);
    }
}
