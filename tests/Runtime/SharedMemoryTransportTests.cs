using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Runtime;

/// <summary>The transport's shared-memory path between 2 ranks of one machine (tests/ParityApp/SharedSlotsCheck.cs).</summary>
public class SharedMemoryTransportTests(ITestOutputHelper log)
{
    [Fact]
    public void EveryDtypeArrivesExactlySlotsAreReusedAndASenderThatLeavesEarlyStillDelivers()
    {
        var run = MpiLauncher.Parity(2, "shared-slots", log);
        Assert.Contains("PASS shared-slots", run.Output);
        Assert.Contains("[rank 0] ok: the two ranks share memory", run.Output);
        Assert.Contains("[rank 0] ok: rounds 0-2 created one slot per non-empty tensor (4), created 4", run.Output);
        Assert.Contains("[rank 0] ok: round 4, sent while round 3's slots were held, created 4 more (8), created 8", run.Output);
        Assert.Contains("[rank 1] ok: with one rank unwilling, no rank shares memory", run.Output);
        Assert.Contains("[rank 0] ok: and sends through MPI alone", run.Output);
    }
}
