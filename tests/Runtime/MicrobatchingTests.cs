using System;
using System.Linq;
using Pippy.Runtime;
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
        Assert.True(OutputMerge.Concat(0).Merge(parts).allclose(batch, rtol: 0, atol: 0));
    }

    [Fact]
    public void SplitAlongAnotherDimensionAndConcatBack()
    {
        var batch = torch.arange(4 * 10, dtype: torch.float32).reshape(4, 10);
        var parts = Microbatching.Split(batch, 3, MicrobatchSpec.Split(1), "x");
        Assert.Equal(new long[] { 4, 3, 3 }, parts.Select(p => p.shape[1]));
        Assert.True(OutputMerge.Concat(1).Merge(parts).allclose(batch, rtol: 0, atol: 0));
    }

    [Fact]
    public void ReplicateGivesEveryMicrobatchTheWholeTensor()
    {
        var mask = torch.ones(5, 5);
        var parts = Microbatching.Split(mask, 4, MicrobatchSpec.Replicate, "mask");
        Assert.Equal(4, parts.Length);
        Assert.All(parts, p => Assert.Same(mask, p));
    }

    [Fact]
    public void SumAndCustomMergesReduceTheMicrobatches()
    {
        var parts = new[] { torch.tensor(1f), torch.tensor(2f), torch.tensor(4f) };
        Assert.Equal(7f, OutputMerge.Sum.Merge(parts).item<float>());
        Assert.Equal(4f, OutputMerge.Custom("max", ps => torch.stack(ps.ToArray()).max()).Merge(parts).item<float>());
    }

    [Fact]
    public void SplitAlongAMissingDimensionIsAClearError()
    {
        var error = Assert.Throws<ArgumentException>(() => Microbatching.Split(torch.zeros(4, 2), 2, MicrobatchSpec.Split(2), "Input 'x'"));
        Assert.Contains("Input 'x' has 2 dimensions; it cannot be split along dimension 2", error.Message);
    }

    [Theory]
    [InlineData(new long[] { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 }, 4, "0+3 3+3 6+2 8+2")]  // equal blocks: the remainder to the first stages
    [InlineData(new long[] { 8, 1, 1, 1, 1 }, 2, "0+1 1+4")]                        // one heavy block alone
    [InlineData(new long[] { 1, 1, 6, 1, 1 }, 3, "0+2 2+1 3+2")]                    // a heavy middle block gets its own stage
    [InlineData(new long[] { 2, 1, 1, 2, 1, 1 }, 2, "0+3 3+3")]                     // equal parameter counts, not equal block counts
    public void ListsAreDividedByParameterCount(long[] costs, int parts, string expected)
    {
        var ranges = PipelineRanges.Balanced(costs, parts, "blocks");
        Assert.Equal(expected, string.Join(" ", ranges.Select(r => $"{r.Start}+{r.Length}")));
    }

    [Fact]
    public void BalancedRangesNeedABlockPerStage()
    {
        var error = Assert.Throws<InvalidOperationException>(() => PipelineRanges.Balanced(new long[] { 1, 1 }, 3, "blocks"));
        Assert.Contains("blocks has 2 block(s) but is split into 3 stages", error.Message);
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
        Assert.Contains("needs a dimension to be split", error.Message);
    }
}
