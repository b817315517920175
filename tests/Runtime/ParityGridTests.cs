using System.Linq;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Runtime;

/// <summary>
/// The parity grid (tests/ParityApp/Grid): every model feature (chain, a value read by several later stages, no-grad
/// values, several inputs with plain (non-tensor) arguments and a tuple output, a tied weight, a submodule used by two stages, a [SplitInto] list, helper
/// methods with `using` and a dispose scope, a [SplitInto] Sequential, MicrobatchSpec.Custom, a lazily built model, the tied model in bf16 compared at rtol 2e-2) x every schedule kind (CSV included) on every placement (1 stage per rank, 2 per rank looped, 2 per rank
/// in a V) x every training mode (one Step; 3 Steps accumulated, with and without NoSync; data parallel 2, alone,
/// accumulated and with the optimizer's state sharded (ZeRO-1); AdamW with global clipping for 3 steps; checkpoint and resume), each cell against the plain model at
/// rtol 1e-5, and every unsupported combination refused by Build with the message the grid expects. One mpiexec job per
/// rank count; each cell's line goes to the test output.
/// </summary>
public class ParityGridTests(ITestOutputHelper log)
{
    /// <summary>The grid's model features (ParityApp/Grid/GridFeatures.cs).</summary>
    private const int Features = 13;

    /// <summary>The grid's data-parallel modes: one Step, accumulated Steps, and AdamW with its state sharded across the replicas.</summary>
    private const int DataParallelModes = 3;

    private string Grid(int ranks, string filter = "", params (string Name, string? Value)[] environment)
    {
        string directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"pippy-grid-{System.Guid.NewGuid():N}");
        var run = MpiLauncher.Parity(ranks, $"grid {directory} \"{filter}\"", log, environment);
        if (System.IO.Directory.Exists(directory)) System.IO.Directory.Delete(directory, recursive: true);
        var summary = Regex.Match(run.Output, @"GRID \d+ ranks: (\d+) cells equal the plain model, (\d+) refused as expected, (\d+) failed");
        Assert.True(summary.Success, "the grid printed no summary");
        Assert.Equal("0", summary.Groups[3].Value);
        Assert.True(int.Parse(summary.Groups[1].Value) > 0, "the grid ran no cell");
        Assert.DoesNotContain(run.Output.Split('\n'), line => line.StartsWith("CELL") && !line.Contains(": ok (") && !line.Contains("REFUSED as expected"));
        return run.Output;
    }

    private static int Cells(string output) => output.Split('\n').Count(line => line.StartsWith("CELL"));

    /// <summary>2 stages per rank, looped and in a V: 12 features x 6 schedules x 5 modes, and the refusals of one-stage-per-rank schedules.</summary>
    [Fact]
    public void EveryCellOnTwoRanksEqualsThePlainModel()
    {
        var output = Grid(2);
        Assert.Equal(Features * 6 * 5 + Features * 2, Cells(output));
    }

    /// <summary>1 stage per rank on 4 ranks, and 2 per rank with data parallelism 2.</summary>
    [Fact]
    public void EveryCellOnFourRanksEqualsThePlainModel()
    {
        var output = Grid(4);
        Assert.Equal(Features * 6 * 5 + Features * 6 * DataParallelModes + Features * 2, Cells(output));
    }

    /// <summary>1 stage per rank with data parallelism 2.</summary>
    [Fact]
    public void EveryCellOnEightRanksEqualsThePlainModel()
    {
        var output = Grid(8);
        Assert.Equal(Features * 6 * DataParallelModes, Cells(output));
    }

    // The three combinations that gave silently wrong gradients before, by name (each also runs in the grid above).

    /// <summary>InterleavedZeroBubble, 2 stages per rank on 2 ranks, stage 0's value read by stages 1, 2 and 3: the consumer's W gave a buffer back that the producer's I still read.</summary>
    [Fact]
    public void LoopedZeroBubbleWithASkipConnectionEqualsThePlainModel()
    {
        for (int run = 0; run < 3; run++) Grid(2, "fan-out | interleaved-ZB (2 per rank looped)");
    }

    /// <summary>ZB-V and DualPipeV place stages 0 and 3 on rank 0: the tied head now gets the embedding's value and the summed gradient.</summary>
    [Fact]
    public void VSchedulesWithATiedWeightWhoseCopiesSitOnOneRankEqualThePlainModel()
    {
        Grid(2, "tied | ZB-V");
        Grid(2, "tied | DualPipeV");
        Grid(4, "tied | ZB-V (2 per rank in a V) | data-parallel");
    }

    /// <summary>Steps accumulated without zeroing, with a tied weight and with DataParallel = 2: each reduction sums only what its Steps added.</summary>
    [Fact]
    public void GradientAccumulationAcrossStepsWithDataParallelAndTiedWeightsEqualsThePlainModel()
    {
        var output = Grid(4, "tied | 1F1B (1 stage per rank) | accumulate");
        Assert.Contains("accumulate-no-sync: ok", output);
        output = Grid(4, "| data-parallel-accumulate");
        Assert.Equal(Features * 6, Cells(output));
    }

    /// <summary>
    /// Dynamic execution (PIPPY_DYNAMIC=2: forwards run before their turn while a gradient is awaited, up to two
    /// microbatches beyond the table's peak): the whole grid again, every feature, schedule, placement and mode.
    /// </summary>
    [Fact]
    public void DynamicExecutionEqualsThePlainModel()
    {
        WholeGridOnTwoFourAndEightRanks(("PIPPY_DYNAMIC", "2"));
    }

    /// <summary>
    /// Activation recomputation (PIPPY_RECOMPUTE=1: every stage keeps only its inputs, and runs its forward again before
    /// its backward, once per microbatch, also before the input part of a split backward): the whole grid again.
    /// </summary>
    [Fact]
    public void RecomputationEqualsThePlainModel()
    {
        WholeGridOnTwoFourAndEightRanks(("PIPPY_RECOMPUTE", "1"));
    }

    /// <summary>
    /// Recomputation for some stages only (PipelineOptions.RecomputeStages = 0 and 2 of 4): every feature, schedule and
    /// mode with one stage per rank, where stages that recompute send to and receive from stages that do not; and a stage
    /// that does not exist refused at Build.
    /// </summary>
    [Fact]
    public void RecomputationOfSomeStagesEqualsThePlainModel()
    {
        Assert.Equal(Features * 6 * 5 + Features * 6 * DataParallelModes + Features * 2, Cells(Grid(4, "", ("GRID_RECOMPUTE_STAGES", "0,2"))));
        var refusal = MpiLauncher.Parity(4, "recompute-stages-refusal", log);
        Assert.Contains("REFUSED: PipelineOptions.RecomputeStages names stage 7, but GridChain has stages 0 to 3.", refusal.Output);
    }

    /// <summary>The whole grid on 2, 4 and 8 ranks under one environment setting: every cell of each rank count equal to the plain model.</summary>
    private void WholeGridOnTwoFourAndEightRanks((string Name, string? Value) setting)
    {
        Assert.Equal(Features * 6 * 5 + Features * 2, Cells(Grid(2, "", setting)));
        Assert.Equal(Features * 6 * 5 + Features * 6 * DataParallelModes + Features * 2, Cells(Grid(4, "", setting)));
        Assert.Equal(Features * 6 * DataParallelModes, Cells(Grid(8, "", setting)));
    }
}
