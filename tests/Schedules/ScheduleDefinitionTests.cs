using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Schedules;
using Xunit;

namespace Pippy.Tests.Schedules;

/// <summary>
/// The registry of schedule definitions: one per <see cref="ScheduleKind"/>, found by its kind, and the refusals
/// <see cref="SchedulePlacement"/> and <see cref="ScheduleBuilder"/> report, word for word (the generator's
/// diagnostics and the parity grid show them to users).
/// </summary>
public class ScheduleDefinitionTests
{
    private static IEnumerable<(int From, int To)> Chain(int stages) => Enumerable.Range(0, stages - 1).Select(s => (s, s + 1));

    public static IEnumerable<object[]> Kinds() => Enum.GetValues(typeof(ScheduleKind)).Cast<ScheduleKind>().Select(k => new object[] { k });

    [Theory]
    [MemberData(nameof(Kinds))]
    public void EveryKindHasADefinitionOfThatKind(ScheduleKind kind)
    {
        var definition = ScheduleDefinitions.For(kind);
        Assert.Equal(kind, definition.Kind);
        Assert.Same(definition, ScheduleDefinitions.TryFor(kind));
        Assert.Contains(definition, ScheduleDefinitions.All);
    }

    [Fact]
    public void EveryRegisteredDefinitionRoundTripsThroughItsKind()
    {
        foreach (var definition in ScheduleDefinitions.All)
            Assert.Same(definition, ScheduleDefinitions.For(definition.Kind));
        Assert.Equal(ScheduleDefinitions.All.Count, ScheduleDefinitions.All.Select(d => d.Kind).Distinct().Count());
        Assert.Equal(Enum.GetValues(typeof(ScheduleKind)).Length, ScheduleDefinitions.All.Count);
    }

    [Fact]
    public void KindValuesStayAsUserAssembliesStoreThem()
    {
        // [Pipeline(Schedule = ...)] is compiled into user assemblies as an int: these never change.
        var expected = new Dictionary<ScheduleKind, int>
        {
            [ScheduleKind.GPipe] = 0, [ScheduleKind.OneFOneB] = 1, [ScheduleKind.Interleaved1F1B] = 2, [ScheduleKind.LoopedBFS] = 3,
            [ScheduleKind.InterleavedZeroBubble] = 4, [ScheduleKind.ZeroBubbleV] = 5, [ScheduleKind.Custom] = 6, [ScheduleKind.DualPipeV] = 7,
        };
        Assert.Equal(expected.Count, Enum.GetValues(typeof(ScheduleKind)).Length);
        foreach (var pair in expected) Assert.Equal(pair.Value, (int)pair.Key);
    }

    [Fact]
    public void AValueThatIsNoKindHasNoDefinitionAndIsRefusedByName()
    {
        var unknown = (ScheduleKind)42;
        Assert.Null(ScheduleDefinitions.TryFor(unknown));
        Assert.Throws<ArgumentOutOfRangeException>(() => ScheduleDefinitions.For(unknown));
        Assert.Equal(new[] { "42 is not a known schedule" }, ScheduleBuilder.CheckRequest(unknown, 4, 1, 4));
        // As before the registry: placed in a loop and asking nothing more, so that CheckRequest is what refuses it.
        Assert.Empty(SchedulePlacement.Check(unknown, 4, 2, 3));
        Assert.Equal(new[] { 0, 1, 0, 1 }, SchedulePlacement.Ranks(unknown, 4, 2));
        var error = Assert.Throws<InvalidScheduleException>(() => ScheduleBuilder.Build(unknown, ScheduleBuilder.Links(unknown, 4, 1, Chain(4)), 4));
        Assert.Equal("42 is not a known schedule", error.Message);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void DescriptionIsOneLine(ScheduleKind kind)
    {
        var description = ScheduleDefinitions.For(kind).Description;
        Assert.False(string.IsNullOrWhiteSpace(description));
        Assert.DoesNotContain('\n', description);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void PlacementLookupsAgreeWithTheLayout(ScheduleKind kind)
    {
        var definition = ScheduleDefinitions.For(kind);
        Assert.Equal(definition.Layout == StageLayout.V, SchedulePlacement.IsV(kind));
        Assert.Equal(definition.Layout == StageLayout.OneStagePerRank, SchedulePlacement.IsSingleStage(kind));
        int v = definition.RequiredStagesPerRank ?? 3;
        Assert.Equal(definition.Ranks(4 * v, v), SchedulePlacement.Ranks(kind, 4 * v, v));
        Assert.Equal(definition.CheckPlacement(4 * v, v), SchedulePlacement.CheckPlacement(kind, 4 * v, v));
        Assert.Equal(definition.Check(4 * v, v, 5), SchedulePlacement.Check(kind, 4 * v, v, 5));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void AComputedKindBuildsATableOfItsKindOnEveryStagesPerRankItAllows(ScheduleKind kind)
    {
        var definition = ScheduleDefinitions.For(kind);
        if (!definition.IsComputed)
        {
            // Never computed: refused before ScheduleBuilder would ask for its table.
            Assert.NotEmpty(definition.CheckPlacement(4, 1));
            Assert.Throws<InvalidScheduleException>(() => definition.ComputeOnly(StageLinks.Chain(4), 4));
            return;
        }
        foreach (int v in definition.RequiredStagesPerRank is int required ? new[] { required } : new[] { 1, 2, 3 })
        {
            Assert.Empty(definition.Check(2 * v, v, 4));
            var links = ScheduleBuilder.Links(kind, 2 * v, v, Chain(2 * v));
            var computeOnly = definition.ComputeOnly(links, 4);
            Assert.Equal(kind, computeOnly.Kind);
            Assert.Equal(2, computeOnly.RankCount);
            Assert.All(Enumerable.Range(0, 2).SelectMany(computeOnly.ActionsOf), a => Assert.True(a.IsCompute));
            Assert.Equal(kind, ScheduleBuilder.Build(kind, links, 4).Kind);
        }
    }

    [Theory]
    [InlineData(ScheduleKind.GPipe, 4, 0, "StagesPerRank = 0: each rank runs at least one stage")]
    [InlineData(ScheduleKind.LoopedBFS, 4, 3, "4 stages cannot be shared evenly by ranks of 3 stages each; make the stage count a multiple of StagesPerRank")]
    [InlineData(ScheduleKind.GPipe, 4, 2, "GPipe runs one stage per rank, but StagesPerRank = 2; use Interleaved1F1B, LoopedBFS or InterleavedZeroBubble for several")]
    [InlineData(ScheduleKind.OneFOneB, 4, 2, "OneFOneB runs one stage per rank, but StagesPerRank = 2; use Interleaved1F1B, LoopedBFS or InterleavedZeroBubble for several")]
    [InlineData(ScheduleKind.ZeroBubbleV, 4, 1, "ZeroBubbleV places exactly 2 stages per rank in a V, but StagesPerRank = 1; set StagesPerRank = 2 (and an even stage count)")]
    [InlineData(ScheduleKind.DualPipeV, 6, 3, "DualPipeV places exactly 2 stages per rank in a V, but StagesPerRank = 3; set StagesPerRank = 2 (and an even stage count)")]
    [InlineData(ScheduleKind.Custom, 4, 1, "a Custom schedule is read from its CSV file ([Pipeline(ScheduleFile = ...)]), not computed")]
    public void PlacementRefusalsKeepTheirMessages(ScheduleKind kind, int stages, int stagesPerRank, string message)
    {
        Assert.Equal(new[] { message }, SchedulePlacement.CheckPlacement(kind, stages, stagesPerRank));
        Assert.Equal(new[] { message }, SchedulePlacement.Check(kind, stages, stagesPerRank, 8));
        Assert.Equal(new[] { message }, ScheduleBuilder.CheckRequest(kind, stages, stagesPerRank, 8));
        var error = Assert.Throws<InvalidScheduleException>(() => ScheduleBuilder.Links(kind, stages, stagesPerRank, Chain(stages)));
        Assert.Equal(message, error.Message);
    }

    [Theory]
    [InlineData(ScheduleKind.OneFOneB, 4, 1, 3, "1F1B needs at least as many microbatches as ranks (4), but Microbatches = 3; use more microbatches or GPipe")]
    [InlineData(ScheduleKind.DualPipeV, 8, 2, 7, "DualPipeV needs at least twice as many microbatches as ranks (8), but Microbatches = 7")]
    public void MicrobatchRefusalsKeepTheirMessages(ScheduleKind kind, int stages, int stagesPerRank, int microbatches, string message)
    {
        Assert.Empty(SchedulePlacement.CheckPlacement(kind, stages, stagesPerRank));
        Assert.Equal(new[] { message }, SchedulePlacement.Check(kind, stages, stagesPerRank, microbatches));
        var links = ScheduleBuilder.Links(kind, stages, stagesPerRank, Chain(stages));
        var error = Assert.Throws<InvalidScheduleException>(() => ScheduleBuilder.Build(kind, links, microbatches));
        Assert.Equal(message, error.Message);
    }

    [Fact]
    public void RequestRefusalsComeBeforeThePlacementsAndKeepTheirMessages()
    {
        Assert.Equal(new[]
        {
            "a pipeline needs at least one stage, not 0",
            "Microbatches = 0: there must be at least one microbatch",
        }, ScheduleBuilder.CheckRequest(ScheduleKind.GPipe, 0, 2, 0));
        Assert.Equal(new[] { "Microbatches = 65537: at most 65536 microbatches (each is a slice of the batch)" }, ScheduleBuilder.CheckRequest(ScheduleKind.OneFOneB, 4, 2, 65537));
        Assert.Equal(new[] { "1025 stages: at most 1024" }, ScheduleBuilder.CheckRequest(ScheduleKind.LoopedBFS, 1025, 1, 4));
    }
}
