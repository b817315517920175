using Pippy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>
/// Corpus: a small ResNet as a TorchSharp user writes one. Residual <see cref="BasicBlock"/>s (two 3x3 convolutions
/// with GroupNorm, ReLU, and a 1x1 projection shortcut where the shape changes), a stem, global average pooling and a
/// linear head. GroupNorm, not BatchNorm: BatchNorm in training mode normalises each microbatch by its own statistics
/// (PIPPY0026). Annotation: [Pipeline], partial, [SplitEnd] on two block fields: 3 stages. Width 16: with 8 channels
/// libtorch 2.10's oneDNN convolution backward now and then returns NaN input gradients, in the plain model too
/// (scenario libtorch-conv-nan, docs/troubleshooting.md).
/// </summary>
[Pipeline(Microbatches = 4)]
public sealed partial class CorpusResNet : Module<Tensor, Tensor>
{
    private readonly Conv2d stem;
    private readonly GroupNorm stemNorm;
    [SplitEnd] private readonly BasicBlock layer1;
    [SplitEnd] private readonly BasicBlock layer2;
    private readonly BasicBlock layer3;
    private readonly AdaptiveAvgPool2d pool;
    private readonly Linear fc;

    public CorpusResNet(int channels = 3, int width = 16, int classes = 10) : base(nameof(CorpusResNet))
    {
        stem = Conv2d(channels, width, 3, padding: 1, bias: false);
        stemNorm = CorpusNorm.GroupNorm(2, width);
        layer1 = new BasicBlock(width, width, 1);
        layer2 = new BasicBlock(width, 2 * width, 2);
        layer3 = new BasicBlock(2 * width, 2 * width, 1);
        pool = AdaptiveAvgPool2d(1);
        fc = Linear(2 * width, classes);
        RegisterComponents();
    }

    /// <param name="x">images, [batch, channels, height, width]</param>
    public override Tensor forward(Tensor x)
    {
        x = functional.relu(stemNorm.forward(stem.forward(x)));
        x = layer1.forward(x);
        x = layer2.forward(x);
        x = layer3.forward(x);
        x = pool.forward(x).flatten(1);
        return fc.forward(x);
    }
}

/// <summary>Two 3x3 convolutions with GroupNorm and a shortcut (identity, or a strided 1x1 convolution).</summary>
public sealed class BasicBlock : Module<Tensor, Tensor>
{
    private readonly Conv2d conv1;
    private readonly GroupNorm norm1;
    private readonly Conv2d conv2;
    private readonly GroupNorm norm2;
    private readonly Module<Tensor, Tensor> shortcut;

    public BasicBlock(int inChannels, int outChannels, int stride) : base(nameof(BasicBlock))
    {
        conv1 = Conv2d(inChannels, outChannels, 3, stride: stride, padding: 1, bias: false);
        norm1 = CorpusNorm.GroupNorm(2, outChannels);
        conv2 = Conv2d(outChannels, outChannels, 3, padding: 1, bias: false);
        norm2 = CorpusNorm.GroupNorm(2, outChannels);
        shortcut = stride != 1 || inChannels != outChannels
            ? Sequential(Conv2d(inChannels, outChannels, 1, stride: stride, bias: false), CorpusNorm.GroupNorm(2, outChannels))
            : Identity();
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h = functional.relu(norm1.forward(conv1.forward(x)));
        h = norm2.forward(conv2.forward(h));
        return functional.relu(h + shortcut.forward(x));
    }
}

/// <summary>
/// GroupNorm with its affine weight 1 and bias 0, as PyTorch initialises them. TorchSharp 0.107.0's
/// <c>nn.GroupNorm</c> leaves both uninitialised (read here: values near 1e38 and NaN, different in every process), so
/// a model using it must set them itself; this is TorchSharp's behaviour, not the pipeline's.
/// </summary>
public static class CorpusNorm
{
    public static GroupNorm GroupNorm(long groups, long channels)
    {
        var norm = nn.GroupNorm(groups, channels);
        using (no_grad())
        {
            norm.weight!.fill_(1.0);
            norm.bias!.zero_();
        }
        return norm;
    }
}
