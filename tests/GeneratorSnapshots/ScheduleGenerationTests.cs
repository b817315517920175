extern alias generator;
using System.IO;
using System.Linq;
using Pippy.Schedules;
using Xunit;
using PlanResult = generator::Pippy.Generators.Model.PlanResult;
using TrackingNames = generator::Pippy.Generators.TrackingNames;

namespace Pippy.Tests.Generator;

/// <summary>The schedule attribute at build time: the emitted tables equal what the runtime computes, and bad choices are build errors.</summary>
public class ScheduleGenerationTests
{
    private static readonly string Chains = File.ReadAllText(Path.Combine(GeneratorHarness.RepositoryRoot(), "tests", "ParityApp", "Models", "ScheduleChains.cs"));

    [Theory]
    [InlineData("OneFOneBChain", ScheduleKind.OneFOneB, 4, 1, 4)]
    [InlineData("InterleavedChain", ScheduleKind.Interleaved1F1B, 8, 2, 4)]
    [InlineData("LoopedBfsChain", ScheduleKind.LoopedBFS, 4, 2, 3)]
    [InlineData("ZeroBubbleChain", ScheduleKind.InterleavedZeroBubble, 4, 1, 4)]
    [InlineData("InterleavedZeroBubbleChain", ScheduleKind.InterleavedZeroBubble, 4, 2, 4)]
    [InlineData("ZeroBubbleVChain", ScheduleKind.ZeroBubbleV, 8, 2, 4)]
    [InlineData("DualPipeVChain", ScheduleKind.DualPipeV, 8, 2, 8)]
    public void EmittedTableEqualsTheRuntimeComputedTable(string model, ScheduleKind kind, int stages, int stagesPerRank, int microbatches)
    {
        var run = GeneratorHarness.Driver().RunGenerators(GeneratorHarness.Compile(Chains)).GetRunResult().Results.Single();
        var plan = run.TrackedSteps[TrackingNames.Plan].SelectMany(s => s.Outputs).Select(o => ((PlanResult)o.Value).Plan).Single(p => p?.Type.Name == model)!;
        var links = ScheduleBuilder.Links(kind, stages, stagesPerRank, Enumerable.Range(0, stages - 1).Select(s => (s, s + 1)));
        var runtime = ScheduleBuilder.Build(kind, links, microbatches);
        Assert.Equal(runtime.Format(), plan.ScheduleLines.ToArray());
        Assert.Equal(stages / stagesPerRank, plan.ScheduleLines.Count);
    }

    private const string CustomModel = """
        using Pippy;
        using TorchSharp.Modules;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;
        [Pipeline(ScheduleFile = "mine.csv")]
        public sealed partial class Net : Module<Tensor, Tensor>
        {
            [SplitInto(2)] private readonly ModuleList<Linear> layers = new ModuleList<Linear>(Linear(2, 2), Linear(2, 2));
            public Net() : base("Net") { RegisterComponents(); }
            public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x); return x; }
        }
        """;

    private static string CustomScheduleError(string csv)
    {
        var result = GeneratorHarness.RunWithFiles(new[] { CustomModel }, new[] { ("/project/schedules/mine.csv", csv) });
        var diagnostic = Assert.Single(result.GeneratorDiagnostics);
        Assert.Equal("PIPPY0010", diagnostic.Id);
        return diagnostic.GetMessage();
    }

    [Fact]
    public void CustomCsvScheduleIsLoweredAndEmitted()
    {
        var result = GeneratorHarness.RunWithFiles(new[] { CustomModel }, new[] { ("/project/schedules/mine.csv", "0F0,0F1,0B0,0B1\n1F0,1B0,1F1,1B1\n") });
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompileErrors());
        Assert.Contains("\"0F0 0SEND_F0 0F1 0SEND_F1 0RECV_B0 0B0 0RECV_B1 0B1\",", result.Render());
    }

    [Fact]
    public void MalformedCsvCellIsABuildErrorNamingTheCell() =>
        Assert.Contains("mine.csv row 2, column 3: '1X0' is not an action", CustomScheduleError("0F0,0B0\n1F0,1B0,1X0\n"));

    [Fact]
    public void DeadlockingCsvIsABuildErrorNamingTheCell()
    {
        // Rank 0 waits for microbatch 0's gradient before sending microbatch 1; rank 1 wants microbatch 1 first.
        string message = CustomScheduleError("0F0,0B0,0F1,0B1\n1F1,1F0,1B0,1B1\n");
        Assert.True(message.Contains("would hang"), message);
        Assert.True(message.Contains("CSV row"), message);
    }

    [Fact]
    public void CsvStageOnTwoRanksIsABuildError() =>
        Assert.Contains("row 2, column 1: '0F1' runs stage 0, which row 1 runs", CustomScheduleError("0F0,0B0,1B1\n0F1,1F0,1B0\n"));

    [Theory]
    [InlineData("Schedule = ScheduleKind.ZeroBubbleV", "exactly 2 stages per rank in a V")]
    [InlineData("Schedule = ScheduleKind.DualPipeV, StagesPerRank = 2, Microbatches = 3", "DualPipeV needs at least twice as many microbatches as ranks (4)")]
    [InlineData("Schedule = ScheduleKind.OneFOneB, Microbatches = 2", "1F1B needs at least as many microbatches as ranks (4)")]
    [InlineData("Schedule = ScheduleKind.GPipe, StagesPerRank = 2", "GPipe runs one stage per rank")]
    [InlineData("Schedule = ScheduleKind.LoopedBFS, StagesPerRank = 3", "4 stages cannot be shared evenly by ranks of 3 stages each")]
    public void InvalidScheduleChoiceIsABuildError(string options, string reason)
    {
        var diagnostic = Assert.Single(RunFourStageNet(options).GeneratorDiagnostics);
        Assert.Equal("PIPPY0010", diagnostic.Id);
        Assert.Contains(reason, diagnostic.GetMessage());
    }

    [Theory]
    [InlineData(3)]
    [InlineData(5)]
    public void InterleavedWithMicrobatchesThatAreNoMultipleOfTheRanksBuilds(int microbatches)
    {
        // Refused until interleaved 1F1B cut its microbatches into rounds of at least p (Interleaved1F1BSchedule.Rounds).
        var result = RunFourStageNet($"Schedule = ScheduleKind.Interleaved1F1B, StagesPerRank = 2, Microbatches = {microbatches}");
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompileErrors());
        var links = ScheduleBuilder.Links(ScheduleKind.Interleaved1F1B, 4, 2, Enumerable.Range(0, 3).Select(s => (s, s + 1)));
        foreach (var line in ScheduleBuilder.Build(ScheduleKind.Interleaved1F1B, links, microbatches).Format())
            Assert.Contains($"\"{line}\",", result.Render());
    }

    /// <summary>A 4-stage chain of linear layers under the given [Pipeline] options.</summary>
    private static GeneratorHarness.Result RunFourStageNet(string options) => GeneratorHarness.Run($$"""
        using Pippy;
        using Pippy.Schedules;
        using TorchSharp.Modules;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;
        [Pipeline({{options}})]
        public sealed partial class Net : Module<Tensor, Tensor>
        {
            [SplitInto(4)] private readonly ModuleList<Linear> layers = new ModuleList<Linear>(Linear(2, 2), Linear(2, 2), Linear(2, 2), Linear(2, 2));
            public Net() : base("Net") { RegisterComponents(); }
            public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x); return x; }
        }
        """);
}
