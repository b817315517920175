using System.Linq;
using Pippy.Schedules;
using Xunit;

namespace Pippy.Tests.Schedules;

public class ScheduleTests
{
    [Fact]
    public void GPipeRunsAllForwardsThenAllBackwardsInReverse()
    {
        var table = ScheduleBuilder.Build(ScheduleKind.GPipe, StageLinks.Chain(3), 3);
        Assert.Equal(new[]
        {
            "0F0 0SEND_F0 0F1 0SEND_F1 0F2 0SEND_F2 0RECV_B2 0B2 0RECV_B1 0B1 0RECV_B0 0B0",
            "1RECV_F0 1F0 1SEND_F0 1RECV_F1 1F1 1SEND_F1 1RECV_F2 1F2 1SEND_F2 1RECV_B2 1B2 1SEND_B2 1RECV_B1 1B1 1SEND_B1 1RECV_B0 1B0 1SEND_B0",
            "2RECV_F0 2F0 2RECV_F1 2F1 2RECV_F2 2F2 2B2 2SEND_B2 2B1 2SEND_B1 2B0 2SEND_B0",
        }, table.Format());
    }

    [Theory]
    [InlineData("2F0", 2, ActionKind.Forward, 0)]
    [InlineData("0SEND_F13", 0, ActionKind.SendForward, 13)]
    [InlineData("11RECV_B2", 11, ActionKind.ReceiveBackward, 2)]
    [InlineData("1B7", 1, ActionKind.Backward, 7)]
    public void ActionsReadAndWriteTorchsNotation(string text, int stage, ActionKind kind, int microbatch)
    {
        var action = PipelineAction.Parse(text);
        Assert.Equal(new PipelineAction(stage, kind, microbatch), action);
        Assert.Equal(text, action.ToString());
    }

    [Theory]
    [InlineData("F0")]
    [InlineData("2X0")]
    [InlineData("2F")]
    [InlineData("2SEND_F")]
    public void MalformedActionsAreRejected(string text) => Assert.False(PipelineAction.TryParse(text, out _));

    [Fact]
    public void TableRoundTripsThroughItsStringForm()
    {
        var table = ScheduleBuilder.Build(ScheduleKind.GPipe, StageLinks.Chain(4), 5);
        Assert.Equal(table, ScheduleTable.Parse(ScheduleKind.GPipe, 4, 5, table.Format()));
    }

    [Fact]
    public void ForwardOnlyKeepsForwardsAndTheirMessages()
    {
        var table = ScheduleBuilder.Build(ScheduleKind.GPipe, StageLinks.Chain(2), 2).ForwardOnly();
        Assert.Equal(new[] { "0F0 0SEND_F0 0F1 0SEND_F1", "1RECV_F0 1F0 1RECV_F1 1F1" }, table.Format());
    }

    [Fact]
    public void SkipConnectionIsADirectMessage()
    {
        // 0 -> 1 -> 2 plus a skip 0 -> 2: stage 2 receives from stage 0 too, so stage 0 sends and stage 2 receives.
        var links = new StageLinks(3, new[] { (0, 1), (1, 2), (0, 2) }, new[] { 0, 1, 2 });
        Assert.Equal(new[] { 1, 2 }, links.Consumers(0));
        var table = ScheduleBuilder.Build(ScheduleKind.GPipe, links, 2);
        Assert.True(ScheduleSimulator.Run(table, links).Completed);
    }

    [Fact]
    public void SimulatorFindsADeadlockAndNamesTheRanks()
    {
        // Both ranks wait for the other's backward gradient before sending anything.
        var links = StageLinks.Chain(2);
        var table = ScheduleTable.Parse(ScheduleKind.GPipe, 2, 1, new[] { "0F0 0RECV_B0 0SEND_F0 0B0", "1RECV_F0 1F0 1B0 1SEND_B0" });
        var result = ScheduleSimulator.Run(table, links);
        Assert.False(result.Completed);
        Assert.Contains("rank 0 at action 1 (0RECV_B0) waits for 1SEND_B0", result.Deadlock);
        Assert.Contains("rank 1 at action 0 (1RECV_F0) waits for 0SEND_F0", result.Deadlock);
        var error = Assert.Throws<InvalidScheduleException>(() => ScheduleBuilder.Check(table, links));
        Assert.Contains("would hang", error.Message);
    }

    [Fact]
    public void ValidatorReportsMissingAndMisorderedActions()
    {
        var links = StageLinks.Chain(2);
        var table = ScheduleTable.Parse(ScheduleKind.GPipe, 2, 2, new[]
        {
            "0F0 0SEND_F0 0RECV_B0 0B0 0B1",
            "1RECV_F0 1F0 1B0 1SEND_B0 1RECV_F1 1F1 1F1",
        });
        var errors = ScheduleValidator.Validate(table, links);
        Assert.Contains(errors, e => e.Contains("rank 0 action 4 (0B1): backward before the forward 0F1"));
        Assert.Contains(errors, e => e.Contains("stage 0: every microbatch needs exactly one F, but: 0F1 x0"));
        Assert.Contains(errors, e => e.Contains("stage 1: every microbatch needs exactly one F, but: 1F1 x2"));
        Assert.Contains(errors, e => e.Contains("stage 1: every microbatch needs exactly one B, or one I and one W, but: microbatch 1 (B x0, I x0, W x0)"));
    }

    [Fact]
    public void ValidatorRejectsActionsOnTheWrongRank()
    {
        var table = ScheduleTable.Parse(ScheduleKind.GPipe, 2, 1, new[] { "0F0 0SEND_F0 1B0 0RECV_B0 0B0", "1RECV_F0 1F0 1SEND_B0" });
        Assert.Contains(ScheduleValidator.Validate(table, StageLinks.Chain(2)), e => e.Contains("rank 0 action 2 (1B0): stage 1 runs on rank 1, not here"));
    }

    [Fact]
    public void ZeroMicrobatchesIsRefusedWithTheReason()
    {
        var error = Assert.Throws<InvalidScheduleException>(() => ScheduleBuilder.Build(ScheduleKind.GPipe, StageLinks.Chain(2), 0));
        Assert.Contains("at least one microbatch", error.Message);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 8)]
    [InlineData(4, 64)]
    public void EveryGPipeTableValidatesAndSimulates(int stages, int microbatches)
    {
        var links = StageLinks.Chain(stages);
        var table = ScheduleBuilder.Build(ScheduleKind.GPipe, links, microbatches);
        Assert.Empty(ScheduleValidator.Validate(table, links));
        var simulation = ScheduleSimulator.Run(table, links);
        Assert.True(simulation.Completed, simulation.Deadlock);
        Assert.Equal(stages * microbatches * 2, Enumerable.Range(0, stages).Sum(r => table.ActionsOf(r).Count(a => a.IsCompute)));
    }

    [Fact]
    public void TextGridShowsEachRanksActionsAndBubbles()
    {
        var links = StageLinks.Chain(2);
        var metrics = ScheduleSimulator.Measure(ScheduleBuilder.Build(ScheduleKind.GPipe, links, 2), links, ScheduleCosts.Unit);
        Assert.Equal(
            "rank 0  |F0  F1  .   .   B1  B0\n" +
            "rank 1  |.   F0  F1  B1  B0  .\n" +
            "bubble 33.3%, peak in-flight microbatches per rank: 2, 2\n",
            ScheduleDiagram.TextGrid(metrics, 2));
    }

    [Fact]
    public void ChromeTraceHasOneCompleteEventPerAction()
    {
        var links = StageLinks.Chain(2);
        var table = ScheduleBuilder.Build(ScheduleKind.OneFOneB, links, 3);
        var metrics = ScheduleSimulator.Measure(table, links, new ScheduleCosts());
        using var trace = System.Text.Json.JsonDocument.Parse(ScheduleDiagram.ChromeTrace(metrics.Timeline));
        var events = trace.RootElement.GetProperty("traceEvents").EnumerateArray().ToArray();
        Assert.Equal(table.ActionsOf(0).Count + table.ActionsOf(1).Count, events.Length);
        Assert.All(events, e => Assert.Equal("X", e.GetProperty("ph").GetString()));
        var lastBackward = events.Single(e => e.GetProperty("name").GetString() == "0B2");
        Assert.Equal(metrics.Makespan * 1000, lastBackward.GetProperty("ts").GetDouble() + lastBackward.GetProperty("dur").GetDouble(), 6);
    }
}
