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

    /// <summary>EmbeddingBag's flat tokens and bag offsets (then per-bag values) divided into parts of whole bags.</summary>
    private static torch.Tensor[][] WholeBags(torch.Tensor[] values, int parts)
    {
        long bags = values[1].shape[0];
        var starts = values[1].data<long>().ToArray();
        var result = new torch.Tensor[parts][];
        long first = 0;
        for (int p = 0; p < parts; p++)
        {
            long count = bags / parts + (p < bags % parts ? 1 : 0);
            long begin = starts[first], end = first + count < bags ? starts[first + count] : values[0].shape[0];
            result[p] = values.Select((v, k) => k == 0 ? v.narrow(0, begin, end - begin) : k == 1 ? v.narrow(0, first, count) - begin : v.narrow(0, first, count)).ToArray();
            first += count;
        }
        return result;
    }

    private static (torch.Tensor Tokens, torch.Tensor Offsets, torch.Tensor Labels) Bags() =>
        (torch.arange(10L), torch.tensor(new long[] { 0, 3, 4, 8, 9 }), torch.tensor(new long[] { 10, 11, 12, 13, 14 }));

    [Fact]
    public void ACustomSpecDividesSeveralValuesTogetherKeepingBagsWhole()
    {
        var (tokens, offsets, labels) = Bags();
        var bags = MicrobatchSpec.Custom("whole bags", WholeBags);
        var parts = Microbatching.Divide(new[] { ("Input 'tokens'", tokens, bags), ("Input 'offsets'", offsets, bags), ("The target", labels, bags) }, 2);
        Assert.Equal(new[] { 2, 2, 2 }, parts.Select(p => p.Length));
        // Bags 0-2 (tokens 0-7) and bags 3-4 (tokens 8-9); each part's offsets start at 0.
        Assert.Equal(new long[] { 0, 1, 2, 3, 4, 5, 6, 7 }, parts[0][0].data<long>().ToArray());
        Assert.Equal(new long[] { 8, 9 }, parts[0][1].data<long>().ToArray());
        Assert.Equal(new long[] { 0, 3, 4 }, parts[1][0].data<long>().ToArray());
        Assert.Equal(new long[] { 0, 1 }, parts[1][1].data<long>().ToArray());
        Assert.Equal(new long[] { 13, 14 }, parts[2][1].data<long>().ToArray());
        Assert.Equal("divided by 'whole bags'", bags.ToString());
    }

    [Fact]
    public void CustomSpecsSplitAndReplicateMixInOneDivision()
    {
        var (tokens, offsets, _) = Bags();
        var bags = MicrobatchSpec.Custom("whole bags", WholeBags);
        var single = MicrobatchSpec.Custom("halves", (v, m) => v[0].tensor_split(m).Select(p => new[] { p }).ToArray());
        var parts = Microbatching.Divide(new[]
        {
            ("Input 'x'", torch.arange(6L), MicrobatchSpec.Split(0)), ("Input 'tokens'", tokens, bags), ("Input 'w'", torch.ones(2), MicrobatchSpec.Replicate),
            ("Input 'offsets'", offsets, bags), ("Input 'y'", torch.arange(4L), single),
        }, 2);
        Assert.Equal(new long[] { 3, 3 }, parts[0].Select(p => p.shape[0]));
        Assert.Equal(new long[] { 8, 2 }, parts[1].Select(p => p.shape[0]));
        Assert.Equal(new long[] { 3, 2 }, parts[3].Select(p => p.shape[0]));
        Assert.Equal(new long[] { 2, 2 }, parts[4].Select(p => p.shape[0]));
        // Microbatching.Split takes a custom spec of one value too.
        Assert.Equal(2, Microbatching.Split(torch.arange(4L), 2, single, "Input 'y'").Length);
    }

    [Fact]
    public void ACustomSpecFirstDividesAmongReplicasThenIntoMicrobatches()
    {
        // What the runner does with DataParallel = 2 and 2 microbatches: the function with m = 2 replicas, then on each share.
        var (tokens, offsets, labels) = Bags();
        var bags = MicrobatchSpec.Custom("whole bags", WholeBags);
        var values = new[] { ("Input 'tokens'", tokens, bags), ("Input 'offsets'", offsets, bags), ("The target", labels, bags) };
        var shares = Microbatching.Divide(values, 2, "data-parallel replicas");
        var replica1 = Microbatching.Divide(values.Select((v, i) => (v.Item1, shares[i][1], v.bags)).ToArray(), 2);
        Assert.Equal(new long[] { 8 }, replica1[0][0].data<long>().ToArray());
        Assert.Equal(new long[] { 0 }, replica1[1][1].data<long>().ToArray());
        Assert.Equal(new long[] { 14 }, replica1[2][1].data<long>().ToArray());
    }

    [Fact]
    public void ACustomSpecReturningTheWrongNumberOfPartsIsAnErrorNamingTheInputs()
    {
        var (tokens, offsets, _) = Bags();
        var wrong = MicrobatchSpec.Custom("one part", (v, m) => new[] { v });
        var error = Assert.Throws<ArgumentException>(() => Microbatching.Divide(new[] { ("Input 'tokens'", tokens, wrong), ("Input 'offsets'", offsets, wrong) }, 4));
        Assert.Contains("MicrobatchSpec.Custom 'one part' divided Input 'tokens' and Input 'offsets' into 1 parts, but there are 4 microbatches", error.Message);
        error = Assert.Throws<ArgumentException>(() => Microbatching.Divide(new[] { ("Input 'tokens'", tokens, wrong) }, 2, "data-parallel replicas"));
        Assert.Contains("but there are 2 data-parallel replicas: it must return one part per data-parallel replica", error.Message);
    }

    [Fact]
    public void ACustomSpecReturningTheWrongNumberOfTensorsIsAnErrorNamingTheInputs()
    {
        var (tokens, offsets, _) = Bags();
        var tokensOnly = MicrobatchSpec.Custom("tokens only", (v, m) => WholeBags(v, m).Select(p => new[] { p[0] }).ToArray());
        var error = Assert.Throws<ArgumentException>(() => Microbatching.Divide(new[] { ("Input 'tokens'", tokens, tokensOnly), ("Input 'offsets'", offsets, tokensOnly) }, 2));
        Assert.Contains("returned 1 tensor(s) in part 0 of Input 'tokens' and Input 'offsets', but it was given 2", error.Message);
        var missing = MicrobatchSpec.Custom("a hole", (v, m) => WholeBags(v, m).Select(p => new[] { p[0], null! }).ToArray());
        error = Assert.Throws<ArgumentException>(() => Microbatching.Divide(new[] { ("Input 'tokens'", tokens, missing), ("Input 'offsets'", offsets, missing) }, 2));
        Assert.Contains("returned no tensor for Input 'offsets' in part 0", error.Message);
        var throwing = MicrobatchSpec.Custom("whole bags", WholeBags);
        error = Assert.Throws<ArgumentException>(() => Microbatching.Divide(new[] { ("Input 'tokens'", tokens, throwing) }, 2));
        Assert.Contains("MicrobatchSpec.Custom 'whole bags' failed to divide Input 'tokens' into 2 microbatches", error.Message);
    }
}
