using Pippy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>
/// A model whose stage boundary has a shape that depends on the data: stage 0 keeps as many rows as the input's
/// first element says. Its messages cannot be received into buffers of a learned shape.
/// </summary>
[Pipeline(Microbatches = 1)]
public sealed partial class ShapeByData : Module<Tensor, Tensor>
{
    [SplitEnd] private readonly Linear first = Linear(4, 4);
    private readonly Linear second = Linear(4, 4);

    public ShapeByData() : base(nameof(ShapeByData)) { RegisterComponents(); }

    public override Tensor forward(Tensor x)
    {
        var kept = first.forward(x).narrow(0, 0, (long)x[0, 0].item<float>());
        return second.forward(kept);
    }
}
