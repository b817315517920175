using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Schedules;
using Xunit;

namespace Pippy.Tests.Schedules;

/// <summary>
/// The schedules with several stages per rank (looped and V) on every microbatch count they take, multiples of the
/// rank count or not: each builds a table that validates, runs to the end in the simulator, computes every
/// (stage, microbatch) forward once and backward once, and holds no more activations than its stated bound.
/// </summary>
public class UnevenMicrobatchTests
{
    private static readonly ScheduleKind[] MultiStageKinds =
    {
        ScheduleKind.Interleaved1F1B, ScheduleKind.LoopedBFS, ScheduleKind.InterleavedZeroBubble, ScheduleKind.ZeroBubbleV, ScheduleKind.DualPipeV,
    };

    /// <summary>p in {2, 3, 4}, v in {2, 3} (2 for the V kinds), m from 1 to 3p + 1, where the kind takes m.</summary>
    public static IEnumerable<object[]> Sweep() =>
        from kind in MultiStageKinds
        from p in new[] { 2, 3, 4 }
        from v in SchedulePlacement.IsV(kind) ? new[] { 2 } : new[] { 2, 3 }
        from m in Enumerable.Range(1, 3 * p + 1)
        where kind != ScheduleKind.DualPipeV || m >= 2 * p // DualPipeV's warm-up fills both stages: m >= 2p (see its refusal)
        select new object[] { kind, p, v, m };

    /// <summary>The sweep's counts for interleaved 1F1B, as (p, v, m).</summary>
    public static IEnumerable<object[]> InterleavedSweep() =>
        Sweep().Where(row => (ScheduleKind)row[0] == ScheduleKind.Interleaved1F1B).Select(row => row.Skip(1).ToArray());

    private static (ScheduleTable Table, StageLinks Links) Build(ScheduleKind kind, int p, int v, int m)
    {
        var links = ScheduleBuilder.Links(kind, p * v, v, Enumerable.Range(0, p * v - 1).Select(s => (s, s + 1)));
        return (ScheduleBuilder.Build(kind, links, m), links);
    }

    /// <summary>The peak stage-activations a rank holds: a forward adds one, a B or a W (which ends a split backward) frees one.</summary>
    private static int Peak(ScheduleTable table, int rank)
    {
        int holding = 0, peak = 0;
        foreach (var a in table.ActionsOf(rank))
        {
            if (a.Kind == ActionKind.Forward) peak = Math.Max(peak, ++holding);
            else if (a.Kind == ActionKind.Backward || a.Kind == ActionKind.BackwardWeight) holding--;
        }
        return peak;
    }

    /// <summary>What each kind promises to hold at most on rank r, in stage-activations.</summary>
    private static int PeakBound(ScheduleKind kind, int p, int v, int m, int r) => kind switch
    {
        // The warm-up's forwards and the one of the first steady step; never more than all v m.
        ScheduleKind.Interleaved1F1B => Math.Min(v * m, Interleaved1F1BSchedule.Warmup(p, v, m, r) + 1),
        // Breadth-first: every microbatch of every local stage before the first backward.
        ScheduleKind.LoopedBFS => v * m,
        // At most (p - r) v microbatches in flight on the rank's first stage (1F1B's p - r, times the stages a
        // microbatch visits here), each holding at most v stage-activations, since its first stage frees last.
        ScheduleKind.InterleavedZeroBubble => v * Math.Min(m, (p - r) * v),
        // The paper's 2p stage-activations per rank.
        ScheduleKind.ZeroBubbleV => 2 * p,
        // DualPipe's PP + 1 with PP = 2p.
        ScheduleKind.DualPipeV => 2 * p + 1,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    [Theory]
    [MemberData(nameof(Sweep))]
    public void EveryCountBuildsAValidTableThatRunsAndComputesEachActionOnce(ScheduleKind kind, int p, int v, int m)
    {
        Assert.Empty(ScheduleBuilder.CheckRequest(kind, p * v, v, m));
        var (table, links) = Build(kind, p, v, m);
        Assert.Equal(p, table.RankCount);
        Assert.Empty(ScheduleValidator.Validate(table, links));
        var run = ScheduleSimulator.Run(table, links);
        Assert.True(run.Completed, run.Deadlock);

        // Counted here too, not only by the validator: one F, and one B or one I and one W, per stage and microbatch.
        var counts = Enumerable.Range(0, p).SelectMany(table.ActionsOf).Where(a => a.IsCompute)
            .GroupBy(a => a).ToDictionary(g => g.Key, g => g.Count());
        int Count(int stage, ActionKind k, int mb) => counts.TryGetValue(new PipelineAction(stage, k, mb), out int n) ? n : 0;
        for (int stage = 0; stage < p * v; stage++)
            for (int mb = 0; mb < m; mb++)
            {
                Assert.Equal(1, Count(stage, ActionKind.Forward, mb));
                int full = Count(stage, ActionKind.Backward, mb), input = Count(stage, ActionKind.BackwardInput, mb), weight = Count(stage, ActionKind.BackwardWeight, mb);
                Assert.True((full, input, weight) is (1, 0, 0) or (0, 1, 1), $"stage {stage} microbatch {mb}: B x{full}, I x{input}, W x{weight}");
            }
        Assert.Equal(p * v * m * 2, counts.Where(c => c.Key.Kind != ActionKind.BackwardWeight).Sum(c => c.Value));

        var simulated = ScheduleSimulator.Measure(table, links, new ScheduleCosts()).PeakInFlight;
        for (int r = 0; r < p; r++)
        {
            Assert.Equal(Peak(table, r), simulated[r]);
            Assert.True(simulated[r] <= PeakBound(kind, p, v, m, r), $"{kind} p={p} v={v} m={m} rank {r} holds {simulated[r]}, more than {PeakBound(kind, p, v, m, r)}");
        }
    }

    [Theory]
    [MemberData(nameof(InterleavedSweep))]
    public void Interleaved1F1BHoldsExactlyItsWarmupPlusOne(int p, int v, int m)
    {
        var (table, _) = Build(ScheduleKind.Interleaved1F1B, p, v, m);
        for (int r = 0; r < p; r++) Assert.Equal(PeakBound(ScheduleKind.Interleaved1F1B, p, v, m, r), Peak(table, r));
    }

    [Theory]
    [InlineData(2, 1, new[] { 1 })]
    [InlineData(2, 3, new[] { 3 })]
    [InlineData(2, 4, new[] { 2, 2 })]
    [InlineData(2, 5, new[] { 3, 2 })]
    [InlineData(2, 7, new[] { 3, 2, 2 })]
    [InlineData(4, 3, new[] { 3 })]
    [InlineData(4, 6, new[] { 6 })]
    [InlineData(4, 9, new[] { 5, 4 })]
    [InlineData(4, 16, new[] { 4, 4, 4, 4 })]
    [InlineData(3, 11, new[] { 4, 4, 3 })]
    public void InterleavedRoundsHoldAtLeastPMicrobatchesEach(int p, int m, int[] sizes)
    {
        var rounds = Interleaved1F1BSchedule.Rounds(p, m);
        Assert.Equal(sizes, rounds.Select(r => r.Count).ToArray());
        Assert.Equal(Enumerable.Range(0, m), rounds.SelectMany(r => Enumerable.Range(r.First, r.Count)));
        Assert.All(rounds, r => Assert.InRange(r.Count, Math.Min(m, p), 2 * p - 1));
    }

    [Fact]
    public void MegatronsCutIntoRoundsOfPAndARemainderWouldDeadlock()
    {
        // Why the rounds are cut as they are: the same warm-up and order with Megatron's rounds of p = 4 and a
        // remainder of 1 for m = 5, v = 3 hangs; rank 0 waits for a forward of rank 3's that follows a backward
        // waiting for rank 0's.
        const int p = 4, v = 3, m = 5;
        var links = ScheduleBuilder.Links(ScheduleKind.Interleaved1F1B, p * v, v, Enumerable.Range(0, p * v - 1).Select(s => (s, s + 1)));
        var order = new[] { (First: 0, Count: 4), (First: 4, Count: 1) }
            .SelectMany(round => Enumerable.Range(0, v).SelectMany(chunk => Enumerable.Range(round.First, round.Count).Select(mb => (Chunk: chunk, Microbatch: mb))))
            .ToArray();
        var ranks = Enumerable.Range(0, p).Select(r =>
        {
            var actions = new List<PipelineAction>();
            int warmup = (v - 1) * p + 2 * (p - 1 - r), f = 0, b = 0;
            PipelineAction Forward(int k) => new(order[k].Chunk * p + r, ActionKind.Forward, order[k].Microbatch);
            PipelineAction Backward(int k) => new((v - 1 - order[k].Chunk) * p + r, ActionKind.Backward, order[k].Microbatch);
            for (; f < warmup; f++) actions.Add(Forward(f));
            while (f < order.Length) { actions.Add(Forward(f++)); actions.Add(Backward(b++)); }
            while (b < order.Length) actions.Add(Backward(b++));
            return actions;
        });
        var table = ScheduleLowering.AddCommunication(new ScheduleTable(ScheduleKind.Interleaved1F1B, p * v, m, ranks), links);
        Assert.Empty(ScheduleValidator.Validate(table, links));
        var run = ScheduleSimulator.Run(table, links);
        Assert.False(run.Completed);
        Assert.Contains("rank 0 at action", run.Deadlock);
        Assert.True(ScheduleSimulator.Run(Build(ScheduleKind.Interleaved1F1B, p, v, m).Table, links).Completed);
    }

    [Theory]
    [MemberData(nameof(InterleavedSweep))]
    public void InterleavedIdleIsMegatronsForAnyMAtLeastP(int p, int v, int m)
    {
        // With chunk costs f and b a rank idles (p-1)(f+b) whenever m >= p, a multiple of p or not. With m < p each of
        // the v - 1 chunk changes also waits for the microbatches to come round the p ranks: p - m steps more.
        var (table, links) = Build(ScheduleKind.Interleaved1F1B, p, v, m);
        foreach (var costs in new[] { ScheduleCosts.Unit, new ScheduleCosts { Forward = 1, Backward = 2 } })
        {
            var metrics = ScheduleSimulator.Measure(table, links, costs);
            double step = costs.Forward + costs.Backward, idle = metrics.Makespan - v * m * step;
            double expected = ((p - 1) + (v - 1) * Math.Max(0, p - m)) * step;
            Assert.Equal(expected, idle, 9);
        }
    }
}
