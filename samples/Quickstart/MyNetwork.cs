using Pippy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quickstart;

/// <summary>Linear followed by ReLU.</summary>
public sealed class Block : Module<Tensor, Tensor>
{
    private readonly Linear linear;
    private readonly ReLU relu;

    public Block(long inFeatures, long outFeatures) : base(nameof(Block))
    {
        linear = Linear(inFeatures, outFeatures);
        relu = ReLU();
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => relu.forward(linear.forward(x));
}

/// <summary>The seed network, 512 -> [512, 1024, 256], in three stages: layer0 | layer1 | layer2.</summary>
[Pipeline]
public sealed partial class MyNetwork : Module<Tensor, Tensor>
{
    [SplitEnd] private readonly Block layer0;   // stage 0 ends after layer0 is called
    [SplitEnd] private readonly Block layer1;   // stage 1 ends after layer1 is called
    private readonly Block layer2;

    public MyNetwork(int inDim) : base(nameof(MyNetwork))
    {
        layer0 = new Block(inDim, 512);
        layer1 = new Block(512, 1024);
        layer2 = new Block(1024, 256);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        x = layer0.forward(x);
        x = layer1.forward(x);
        x = layer2.forward(x);
        return x;
    }
}
