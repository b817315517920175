using System;
using System.Linq;
using Pippy.Runtime;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Pippy.Tests.Runtime;

/// <summary>A stage's range of a [SplitInto] Sequential, in one process: its children, their names, and its forward.</summary>
public class StageSequentialTests
{
    private static TorchSharp.Modules.Sequential Layers() => Sequential(
        ("fc1", Linear(4, 8)), ("act1", ReLU()), ("fc2", Linear(8, 8)), ("act2", Tanh()), ("fc3", Linear(8, 2)));

    [Fact]
    public void PartsRunTheChildrenInOrderUnderTheirOwnNamesAndTogetherEqualTheSequential()
    {
        torch.manual_seed(1);
        var layers = Layers();
        var parts = Enumerable.Range(0, 2).Select(part => new StageSequential("layers", layers, parts: 2, part: part)).ToArray();
        // 40 + 72 + 18 parameters: fc1 (and the ReLU) then fc2, act2, fc3 (the largest stage as small as it can be).
        Assert.Equal(new[] { "fc1.weight", "fc1.bias" }, parts[0].state_dict().Keys);
        Assert.Equal(new[] { "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias" }, parts[1].state_dict().Keys);
        Assert.Equal(new[] { "fc1", "act1" }, parts[0].Names);
        Assert.Equal(2, parts[1].Start);
        Assert.Same(layers.named_children().First().module, parts[0].named_children().First().module);
        var x = randn(3, 4);
        using (no_grad())
            Assert.True(parts[1].forward(parts[0].forward(x)).allclose(layers.forward(x)));
        Assert.Contains("layers[2..4] (fc2..fc3), 90 of 130 parameters", parts[1].ToString());
    }
}
