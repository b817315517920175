using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Runtime;

/// <summary>
/// A [SplitInto(2)] list of six blocks with equal parameters whose last two compute 12 times as much
/// (tests/ParityApp/Models/UnevenCompute.cs), divided by parameter count and by measured time, on 2 ranks.
/// </summary>
public class StageBalanceTests(ITestOutputHelper log)
{
    [Fact]
    public void ByParametersSplitsTheEqualBlocksEvenly()
    {
        var output = MpiLauncher.Parity(2, "balance-parameters", log).Output;
        Assert.Contains("PASS balance-parameters", output);
        Assert.Contains("stage 0 (rank 0): blocks (blocks[0..2], 49,536 of 99,072 parameters (50.0%))", output);
        Assert.Contains("stage 1 (rank 1): blocks (blocks[3..5], 49,536 of 99,072 parameters (50.0%))", output);
    }

    [Fact]
    public void ByTimeGivesTheExpensiveBlocksTheirOwnStageAndPrintsThePredictedCost()
    {
        // Measured forward+backward times, averaged across the ranks: the light blocks and one heavy one (16 units)
        // against the other heavy one (12) is the division with the cheapest most expensive stage.
        var output = MpiLauncher.Parity(2, "balance-time", log).Output;
        Assert.Contains("PASS balance-time", output); // outputs, loss and gradients still equal the plain model's
        Assert.Contains("stage 0 (rank 0): blocks (blocks[0..4], ", output);
        Assert.Contains("stage 1 (rank 1): blocks (blocks[5..5], ", output);
        Assert.Contains(" µs measured (", output);
    }
}
