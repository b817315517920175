using System.Linq;
using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Runtime;

/// <summary>
/// Every schedule on real MPI ranks (tests/ParityApp's chain models): losses and every parameter's gradient equal the
/// plain model's in one process, with several stages per rank handing values over in memory and the zero-bubble
/// schedules computing input and weight gradients separately.
/// </summary>
public class ScheduleParityTests(ITestOutputHelper log)
{
    private string Run(string scenario, int ranks)
    {
        var run = MpiLauncher.Parity(ranks, scenario, log);
        Assert.Contains($"PASS {scenario}", run.Output);
        return run.Output;
    }

    [Fact]
    public void OneFOneBOnFourRanks() => Assert.Contains("OneFOneB, 4 microbatches", Run("1f1b", 4));

    [Fact]
    public void OneFOneBWithAMicrobatchCountChosenAtRunTime() => Assert.Contains("OneFOneB, 7 microbatches", Run("1f1b-more-microbatches", 4));

    [Fact]
    public void Interleaved1F1BWithTwoStagesPerRank()
    {
        var output = Run("interleaved-1f1b", 4);
        Assert.Contains("stage 5 (rank 1)", output);
        Assert.Contains("[rank 1 stage 1+5] checked", output);
    }

    /// <summary>
    /// Interleaved 1F1B (2 stages per rank) with microbatch counts that are no multiple of the rank count, the table
    /// computed at start: 3 and 5 microbatches on 2 ranks, 6 and 3 (fewer than the ranks) on 4.
    /// </summary>
    [Theory]
    [InlineData("interleaved-uneven-2", 2, "InterleavedOnTwo: 4 stages on 2 ranks, Interleaved1F1B", new[] { 3, 5 })]
    [InlineData("interleaved-uneven-4", 4, "InterleavedChain: 8 stages on 4 ranks, Interleaved1F1B", new[] { 6, 3 })]
    public void Interleaved1F1BWithMicrobatchesThatAreNoMultipleOfTheRanks(string scenario, int ranks, string plan, int[] microbatches)
    {
        var output = Run(scenario, ranks);
        foreach (int m in microbatches) Assert.Contains($"{plan}, {m} microbatches", output);
    }

    /// <summary>The same on 4 ranks with dynamic execution: forwards run ahead of their turn in the table while a gradient is awaited, bounded by the table's peak.</summary>
    [Fact]
    public void Interleaved1F1BWithMicrobatchesThatAreNoMultipleOfTheRanksUnderDynamicExecution()
    {
        var run = MpiLauncher.Parity(4, "interleaved-uneven-4", log, ("PIPPY_DYNAMIC", "2"));
        Assert.Contains("PASS interleaved-uneven-4", run.Output);
    }

    /// <summary>A custom table (PipelineOptions.ScheduleCsv) may place the stages unevenly: three on rank 0, one on rank 1.</summary>
    [Fact]
    public void ACustomTableThatPlacesStagesUnevenlyRuns()
    {
        var output = Run("uneven-csv", 2);
        Assert.Contains("[rank 0 stage 0+1+2] checked 6 gradients", output);
        Assert.Contains("[rank 1 stage 3] checked 2 gradients", output);
    }

    [Fact]
    public void LoopedBfsOnTwoRanks() => Assert.Contains("[rank 0 stage 0+2] checked", Run("looped-bfs", 2));

    [Fact]
    public void ZeroBubbleSplitsBackwardIntoInputAndWeightGradients() => Assert.Contains("InterleavedZeroBubble", Run("zero-bubble", 4));

    [Fact]
    public void InterleavedZeroBubbleWithTwoStagesPerRank() => Assert.Contains("[rank 1 stage 1+3] checked", Run("interleaved-zero-bubble", 2));

    [Fact]
    public void DualPipeVOnFourRanks()
    {
        var output = Run("dual-pipe-v", 4);
        Assert.Contains("DualPipeV, 8 microbatches", output);
        Assert.Contains("[rank 0 stage 0+7] checked", output);
    }

    [Theory]
    [InlineData("1f1b-2", 2)]
    [InlineData("interleaved-1f1b-2", 2)]
    [InlineData("looped-bfs-4", 4)]
    [InlineData("zero-bubble-2", 2)]
    [InlineData("interleaved-zero-bubble-4", 4)]
    [InlineData("zero-bubble-v-2", 2)]
    [InlineData("dual-pipe-v-2", 2)]
    public void EveryScheduleAlsoOnTheOtherRankCount(string scenario, int ranks) => Run(scenario, ranks);

    [Fact]
    public void CustomScheduleFromACsvFile() => Assert.Contains("CustomChain: 2 stages on 2 ranks, Custom, 3 microbatches", Run("custom-csv", 2));

    [Fact]
    public void MeasuredActionTimesAreWrittenAsChromeTraces()
    {
        string directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "pippy-trace-" + System.Guid.NewGuid().ToString("N"));
        MpiLauncher.Parity(4, "zero-bubble-v", log, ("PARITY_TRACE_DIR", directory));
        for (int rank = 0; rank < 4; rank++)
        {
            using var trace = System.Text.Json.JsonDocument.Parse(System.IO.File.ReadAllText(System.IO.Path.Combine(directory, $"pippy-trace-rank{rank}.json")));
            var events = trace.RootElement.GetProperty("traceEvents").EnumerateArray().ToArray();
            var names = events.Select(e => e.GetProperty("name").GetString()!).ToArray();
            // Rank r holds stages r and 7-r; each runs F, I and W for each of 4 microbatches.
            foreach (int stage in new[] { rank, 7 - rank })
                foreach (var kind in new[] { "F", "I", "W" })
                    Assert.Equal(4, names.Count(n => n.StartsWith($"{stage}{kind}")));
            Assert.All(events, e => Assert.True(e.GetProperty("dur").GetDouble() >= 0));
        }
        System.IO.Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public void ZeroBubbleVPlacesStagesInAV()
    {
        var output = Run("zero-bubble-v", 4);
        Assert.Contains("stage 7 (rank 0)", output);
        Assert.Contains("[rank 3 stage 3+4] checked", output);
    }

    [Fact]
    public void AScheduleChosenAtStartRunsTheSameModel()
    {
        // The chain was built for 1F1B on 4 ranks; PipelineOptions.Schedule/StagesPerRank compute another table at start.
        var interleaved = Run("runtime-interleaved", 2);
        Assert.Contains("[pippy] OneFOneBChain: 4 stages on 2 ranks, Interleaved1F1B, 6 microbatches", interleaved);
        Assert.Contains("PASS runtime-interleaved", interleaved);
        var gpipe = Run("runtime-gpipe", 4);
        Assert.Contains("[pippy] OneFOneBChain: 4 stages on 4 ranks, GPipe, 4 microbatches", gpipe);
    }
}
