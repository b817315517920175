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
        const string dtypes = "Byte, Int8, Int16, Int32, Int64, Float16, BFloat16, Float32, Float64, ComplexFloat32, ComplexFloat64, Bool";
        Assert.Contains($"[rank 1] ok: through shared memory, bit for bit: {dtypes}", run.Output);
        Assert.Contains($"[rank 1] ok: through MPI, bit for bit: {dtypes}", run.Output);
        Assert.Contains("[rank 0] ok: rounds 0-2 created one slot per non-empty tensor (12), created 12", run.Output);
        Assert.Contains("[rank 0] ok: round 4, sent while round 3's slots were held, created 12 more (24), created 24", run.Output);
        Assert.Contains("[rank 1] ok: with one rank unwilling, no rank shares memory", run.Output);
        Assert.Contains("[rank 0] ok: and sends through MPI alone", run.Output);
    }
}
