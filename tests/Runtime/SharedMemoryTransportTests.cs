using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Runtime;

/// <summary>The transport's shared-memory path between 2 ranks of one machine (tests/ParityApp/SharedSlotsCheck.cs).</summary>
public class SharedMemoryTransportTests(ITestOutputHelper log)
{
    [Theory]
    [InlineData(null)] // the default: the ranks of this machine share memory
    [InlineData("0")] // PIPPY_SHARED_MEMORY=0: MPI alone
    public void StepStatisticsCountWhichPathEachMessageTook(string? sharedMemoryVariable)
    {
        // Data parallel 2 x pipeline 2 on this machine (the grid's tied model, interleaved 1F1B, one Step each).
        string directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"pippy-paths-{System.Guid.NewGuid():N}");
        var run = MpiLauncher.Parity(4, $"grid {directory} \"tied | interleaved-1F1B (2 per rank looped) | data-parallel-sharded\"", log,
            ("GRID_PRINT_PATHS", "1"), ("PIPPY_SHARED_MEMORY", sharedMemoryVariable));
        var lines = MessagePathLines.In(run.Output);
        Assert.NotEmpty(lines);
        // Every rank sent tensors, every one of them on the path the setting gives.
        foreach (var line in lines)
        {
            int messages = line.ViaSharedMemory + line.ViaMpi;
            Assert.True(messages > 0, $"rank {line.Rank} counted no message");
            if (sharedMemoryVariable is null) Assert.True(line.ViaMpi == 0 && line.BytesViaSharedMemory > 0, line.ToString());
            else Assert.True(line.ViaSharedMemory == 0 && line.BytesViaMpi > 0, line.ToString());
        }
    }

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
