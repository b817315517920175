using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Runtime;

/// <summary>
/// Mixed precision (MixedPrecision, LossScaling) on 4 ranks against the plain model trained the same way by hand: the
/// grid's tied model in bf16 or fp16 with float32 master weights, AdamW and global clipping, one pipeline (1F1B) or two
/// side by side (interleaved, data parallel 2), the optimizer's state of the masters also sharded across them. In fp16 the first scale overflows: the step is skipped on every rank,
/// the scale lowered, and it grows again after 2 good steps; every parameter equals the plain model's at rtol 2e-2.
/// </summary>
public class MixedPrecisionTests(ITestOutputHelper log)
{
    [Theory]
    [InlineData("bf16", "")]
    [InlineData("fp16", "")]
    [InlineData("bf16", "data-parallel")]
    [InlineData("fp16", "data-parallel")]
    [InlineData("bf16", "data-parallel-sharded")]
    public void MasterWeightsAndLossScalingEqualThePlainModelTrainedTheSameWay(string precision, string placement)
    {
        var run = MpiLauncher.Parity(4, $"mixed-precision {precision} {placement}".Trim(), log);
        Assert.DoesNotContain("MISMATCH", run.Output);
        Assert.Contains($"PASS mixed-precision {precision}{(placement == "" ? "" : " " + placement)}: 5 steps ({(precision == "fp16" ? 2 : 0)} skipped)", run.Output);
    }

    /// <summary>The tied model's step in bf16 sends the same messages between its 4 stages as in float32, with half the bytes (StepStatistics).</summary>
    [Fact]
    public void Bf16MessagesAreHalfTheBytes()
    {
        var run = MpiLauncher.Parity(4, "message-bytes", log);
        Assert.Matches(@"PASS message-bytes: float32 (\d+) messages, [\d,]+ bytes; bf16 \1 messages", run.Output);
    }

    [Fact]
    public void ALossScalingThatCannotWorkIsRefusedWithWhatItNeeds()
    {
        var error = Assert.Throws<System.ArgumentException>(() => new Pippy.Runtime.LossScaling(Initial: 0).Check());
        Assert.EndsWith(": the scales must be positive, the growth at least 1 and the interval at least 1 step.", error.Message);
        Assert.Throws<System.ArgumentException>(() => new Pippy.Runtime.LossScaling(Growth: 0.5).Check());
        Pippy.Runtime.LossScaling.Dynamic.Check();
        Pippy.Runtime.LossScaling.None.Check();
    }

    /// <summary>
    /// A checkpoint whose optimizer state is sharded across 2 replicas (each replica's share in a file of its own, named
    /// by the index): loading it into an unsharded optimizer is refused on every rank with what to do, and an optimizer
    /// sharded the same way loads it.
    /// </summary>
    [Fact]
    public void AShardedOptimizerCheckpointIntoAnUnshardedOptimizerIsRefusedAndIntoAShardedOneLoads()
    {
        string directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"pippy-sharded-{System.Guid.NewGuid():N}");
        try
        {
            var run = MpiLauncher.Parity(4, $"sharded-checkpoint-refusal {directory}", log);
            Assert.Contains("SAVED 2 shards, 4 optimizer shares: rank0.replica0.step1.optimizer.pippy, rank0.replica1.step1.optimizer.pippy, rank1.replica0.step1.optimizer.pippy, rank1.replica1.step1.optimizer.pippy", run.Output);
            Assert.Contains("REFUSED: The checkpoint in " + directory + " holds an optimizer state sharded across 2 data-parallel replicas, but this pipeline's is not sharded: " +
                "load it with DataParallel = 2 and ShardOptimizerState, or merge it into the plain model (MergeCheckpoint) and load that. Nothing was loaded.", run.Output);
            Assert.Contains("PASS sharded-checkpoint-refusal", run.Output);
        }
        finally
        {
            if (System.IO.Directory.Exists(directory)) System.IO.Directory.Delete(directory, recursive: true);
        }
    }
}
