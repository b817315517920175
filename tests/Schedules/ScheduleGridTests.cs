using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Schedules;
using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Schedules;

/// <summary>Every schedule over a grid of ranks, stages per rank and microbatches: valid, free of deadlock, and as costly as its formula.</summary>
public class ScheduleGridTests(ITestOutputHelper log)
{
    private static readonly int[] RankCounts = { 1, 2, 3, 4 };
    private static readonly int[] MicrobatchCounts = { 1, 2, 4, 5, 8 };

    public static IEnumerable<object[]> Grid()
    {
        foreach (ScheduleKind kind in Enum.GetValues(typeof(ScheduleKind)).Cast<ScheduleKind>().Where(k => k != ScheduleKind.Custom))
            foreach (int p in RankCounts)
                foreach (int v in SchedulePlacement.IsSingleStage(kind) ? new[] { 1 } : SchedulePlacement.IsV(kind) ? new[] { 2 } : new[] { 1, 2, 3 })
                    foreach (int m in MicrobatchCounts)
                        if (SchedulePlacement.Check(kind, p * v, v, m).Count == 0)
                            yield return new object[] { kind, p, v, m };
    }

    private static (ScheduleTable Table, StageLinks Links) Build(ScheduleKind kind, int p, int v, int m)
    {
        var links = ScheduleBuilder.Links(kind, p * v, v, Enumerable.Range(0, p * v - 1).Select(s => (s, s + 1)));
        return (ScheduleBuilder.Build(kind, links, m), links);
    }

    [Theory]
    [MemberData(nameof(Grid))]
    public void EveryScheduleValidatesSimulatesAndComputesEachBackwardOnce(ScheduleKind kind, int p, int v, int m)
    {
        var (table, links) = Build(kind, p, v, m);
        Assert.Equal(p, table.RankCount);
        Assert.Empty(ScheduleValidator.Validate(table, links));
        var run = ScheduleSimulator.Run(table, links);
        Assert.True(run.Completed, run.Deadlock);
        var metrics = ScheduleSimulator.Measure(table, links, new ScheduleCosts());
        Assert.InRange(metrics.BubbleFraction, 0, 1);
    }

    [Theory]
    [InlineData(ScheduleKind.GPipe, 2, 4)]
    [InlineData(ScheduleKind.GPipe, 4, 8)]
    [InlineData(ScheduleKind.OneFOneB, 2, 4)]
    [InlineData(ScheduleKind.OneFOneB, 4, 8)]
    [InlineData(ScheduleKind.OneFOneB, 3, 5)]
    public void GPipeAnd1F1BBubbleIsTheClosedForm(ScheduleKind kind, int p, int m)
    {
        var (table, links) = Build(kind, p, 1, m);
        var metrics = ScheduleSimulator.Measure(table, links, ScheduleCosts.Unit);
        Assert.Equal((p - 1.0) / (m + p - 1), metrics.BubbleFraction, 9);
    }

    [Theory]
    [InlineData(2, 2, 4)]
    [InlineData(4, 2, 8)]
    [InlineData(4, 3, 8)]
    public void InterleavedBubbleIsMegatronsFormula(int p, int v, int m)
    {
        // Megatron: the bubble shrinks by v; as a share of the run, (p-1) / (v m + p - 1) with unit chunk costs.
        var (table, links) = Build(ScheduleKind.Interleaved1F1B, p, v, m);
        var metrics = ScheduleSimulator.Measure(table, links, ScheduleCosts.Unit);
        log.WriteLine($"p={p} v={v} m={m}: bubble {metrics.BubbleFraction:F4}, formula {(p - 1.0) / (v * m + p - 1):F4}");
        Assert.Equal((p - 1.0) / (v * m + p - 1), metrics.BubbleFraction, 9);
    }

    [Fact]
    public void MeasuredCostsReplayTheTableWithEachActionsOwnTime()
    {
        // 1F1B on 2 ranks, 4 microbatches: each action's own cost gives the kinds' makespan when they agree, and one
        // slow forward on the last rank delays everything after it there (and the first rank's backward of it).
        var (table, links) = Build(ScheduleKind.OneFOneB, 2, 1, 4);
        var costs = new ScheduleCosts { Forward = 1, Backward = 2 };
        double byKind = ScheduleSimulator.Measure(table, links, costs).Makespan;
        Assert.Equal(byKind, ScheduleSimulator.Measure(table, links, (_, a) => costs.Of(a.Kind)).Makespan, 9);
        var slow = new PipelineAction(1, ActionKind.Forward, 2);
        var delayed = ScheduleSimulator.Measure(table, links, (rank, a) => a.Equals(slow) ? 5 : costs.Of(a.Kind));
        Assert.Equal(byKind + 4, delayed.Makespan, 9);
        Assert.Equal(5, delayed.Timeline.Single(t => t.Action.Equals(slow)).End - delayed.Timeline.Single(t => t.Action.Equals(slow)).Start, 9);
    }

    [Theory]
    [InlineData(2, 4)]
    [InlineData(4, 8)]
    [InlineData(4, 4)]
    public void OneFOneBHoldsAtMostPMinusIMicrobatchesOnStageI(int p, int m)
    {
        var (table, links) = Build(ScheduleKind.OneFOneB, p, 1, m);
        var metrics = ScheduleSimulator.Measure(table, links, new ScheduleCosts());
        for (int i = 0; i < p; i++) Assert.True(metrics.PeakInFlight[i] <= p - i, $"stage {i} holds {metrics.PeakInFlight[i]} microbatches");
        var gpipe = ScheduleSimulator.Measure(Build(ScheduleKind.GPipe, p, 1, m).Table, links, new ScheduleCosts());
        Assert.All(gpipe.PeakInFlight, peak => Assert.Equal(m, peak));
    }

    [Theory]
    [InlineData(2, 4)]
    [InlineData(4, 8)]
    [InlineData(4, 16)]
    public void ZeroBubbleH1HasASmallerBubbleThan1F1B(int p, int m)
    {
        var costs = new ScheduleCosts { Forward = 1, Backward = 2, BackwardInput = 1, BackwardWeight = 1 };
        var oneFOneB = ScheduleSimulator.Measure(Build(ScheduleKind.OneFOneB, p, 1, m).Table, Build(ScheduleKind.OneFOneB, p, 1, m).Links, costs);
        var (table, links) = Build(ScheduleKind.InterleavedZeroBubble, p, 1, m);
        var zeroBubble = ScheduleSimulator.Measure(table, links, costs);
        log.WriteLine($"p={p} m={m}: 1F1B bubble {oneFOneB.BubbleFraction:F4}, ZB-H1 bubble {zeroBubble.BubbleFraction:F4}");
        Assert.True(zeroBubble.BubbleFraction < oneFOneB.BubbleFraction);
    }

    [Theory]
    [InlineData(2, 4)]
    [InlineData(4, 8)]
    public void ZeroBubbleVHasASmallerBubbleThan1F1BWithTheSameRanks(int p, int m)
    {
        var costs = new ScheduleCosts { Forward = 1, Backward = 2, BackwardInput = 1, BackwardWeight = 1 };
        var (oneFOneB, chain) = Build(ScheduleKind.OneFOneB, p, 1, m);
        var (zeroBubbleV, v) = Build(ScheduleKind.ZeroBubbleV, p, 2, m);
        // ZB-V's stages are half as deep, so its actions cost half as much: compare the shares of idle time.
        var half = new ScheduleCosts { Forward = 0.5, Backward = 1, BackwardInput = 0.5, BackwardWeight = 0.5 };
        double bubble1F1B = ScheduleSimulator.Measure(oneFOneB, chain, costs).BubbleFraction;
        double bubbleV = ScheduleSimulator.Measure(zeroBubbleV, v, half).BubbleFraction;
        log.WriteLine($"p={p} m={m}: 1F1B {bubble1F1B:F4}, ZB-V {bubbleV:F4}");
        Assert.True(bubbleV < bubble1F1B);
    }

    [Theory]
    [InlineData(ScheduleKind.OneFOneB, 4, 1, 3, "1F1B needs at least as many microbatches as ranks (4)")]
    [InlineData(ScheduleKind.ZeroBubbleV, 4, 1, 4, "exactly 2 stages per rank in a V")]
    [InlineData(ScheduleKind.GPipe, 2, 2, 4, "GPipe runs one stage per rank")]
    [InlineData(ScheduleKind.DualPipeV, 4, 2, 7, "DualPipeV needs at least twice as many microbatches as ranks (8)")]
    public void InvalidChoicesAreRefusedWithTheReason(ScheduleKind kind, int p, int v, int m, string reason)
    {
        var problems = SchedulePlacement.Check(kind, p * v, v, m);
        Assert.Contains(problems, problem => problem.Contains(reason));
    }

    [Fact]
    public void ZeroBubbleVPlacesTwoStagesPerRankInAV()
    {
        Assert.Equal(new[] { 0, 1, 2, 3, 3, 2, 1, 0 }, SchedulePlacement.Ranks(ScheduleKind.ZeroBubbleV, 8, 2));
        Assert.Equal(new[] { 0, 1, 2, 3, 0, 1, 2, 3 }, SchedulePlacement.Ranks(ScheduleKind.Interleaved1F1B, 8, 2));
    }
}
