using Pippy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>
/// Corpus: a small MobileNet-style CNN of depthwise-separable convolutions (a 3x3 depthwise convolution with
/// groups = channels, then a 1x1 pointwise one, each with GroupNorm and ReLU6), built with Sequential in the
/// constructor, then global average pooling and a classifier. Annotation: [Pipeline], partial, [SplitEnd] on two
/// Sequential fields: 3 stages.
/// </summary>
[Pipeline(Microbatches = 4)]
public sealed partial class CorpusMobileNet : Module<Tensor, Tensor>
{
    [SplitEnd] private readonly Sequential stem;
    [SplitEnd] private readonly Sequential features;
    private readonly Sequential tail;
    private readonly Linear classifier;

    public CorpusMobileNet(int channels = 3, int classes = 5) : base(nameof(CorpusMobileNet))
    {
        stem = Sequential(Conv2d(channels, 8, 3, stride: 2, padding: 1, bias: false), CorpusNorm.GroupNorm(2, 8), ReLU6());
        features = Sequential(DepthwiseSeparable(8, 16, 1), DepthwiseSeparable(16, 16, 2));
        tail = Sequential(DepthwiseSeparable(16, 24, 1), AdaptiveAvgPool2d(1), Flatten());
        classifier = Linear(24, classes);
        RegisterComponents();
    }

    private static Sequential DepthwiseSeparable(int inChannels, int outChannels, int stride) => Sequential(
        Conv2d(inChannels, inChannels, 3, stride: stride, padding: 1, groups: inChannels, bias: false),
        CorpusNorm.GroupNorm(2, inChannels),
        ReLU6(),
        Conv2d(inChannels, outChannels, 1, bias: false),
        CorpusNorm.GroupNorm(2, outChannels),
        ReLU6());

    /// <param name="x">images, [batch, channels, height, width]</param>
    public override Tensor forward(Tensor x)
    {
        x = stem.forward(x);
        x = features.forward(x);
        x = tail.forward(x);
        return classifier.forward(x);
    }
}
