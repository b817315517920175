using System;
using System.Linq;
using Pippy.Runtime.Execution;
using TorchSharp;
using Xunit;

namespace Pippy.Tests.Runtime;

public class MicrobatchingTests
{
    [Fact]
    public void UnevenBatchSplitsLikeTensorSplit()
    {
        var batch = torch.arange(50 * 3, dtype: torch.float32).reshape(50, 3);
        var parts = Microbatching.Split(batch, 8, "x");
        Assert.Equal(new long[] { 7, 7, 6, 6, 6, 6, 6, 6 }, parts.Select(p => p.shape[0]));
        Assert.True(Microbatching.Merge(parts).allclose(batch, rtol: 0, atol: 0));
    }

    [Fact]
    public void FewerRowsThanMicrobatchesIsAClearError()
    {
        var error = Assert.Throws<ArgumentException>(() => Microbatching.Split(torch.zeros(3, 2), 4, "Input 'x'"));
        Assert.Contains("Input 'x' has 3 rows in dimension 0, fewer than the 4 microbatches", error.Message);
        Assert.Contains("set PipelineOptions.Microbatches to at most 3", error.Message);
    }

    [Fact]
    public void ScalarCannotBeSplit()
    {
        var error = Assert.Throws<ArgumentException>(() => Microbatching.Split(torch.tensor(1.0f), 2, "The target"));
        Assert.Contains("needs a batch dimension", error.Message);
    }
}
