using Pippy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>Seven layers in a module list run by an indexed for loop, divided into three stages of 3, 2 and 2.</summary>
[Pipeline(Microbatches = 3)]
public sealed partial class DeepStack : Module<Tensor, Tensor>
{
    [SplitInto(3)] private readonly ModuleList<Linear> layers;

    public DeepStack(int depth = 7) : base(nameof(DeepStack))
    {
        layers = new ModuleList<Linear>();
        for (int i = 0; i < depth; i++) layers.Add(Linear(12, 12));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        for (int i = 0; i < layers.Count; i++)
        {
            x = layers[i].forward(x).tanh();
        }
        return x;
    }
}
