extern alias generator;
using System.Linq;
using Pippy.Schedules;
using Xunit;
using PipelinePlan = generator::Pippy.Generators.Model.PipelinePlan;
using PlanResult = generator::Pippy.Generators.Model.PlanResult;
using TrackingNames = generator::Pippy.Generators.TrackingNames;

namespace Pippy.Tests.Generator;

/// <summary>
/// Each stage's rank is planned once, from the schedule table, and the generated comments say it: right for one stage
/// per rank, looped and V placements (several stages on a rank) and a custom table that places stages unevenly.
/// </summary>
public class PlacementTests
{
    private const string VModel = """
        using Pippy;
        using Pippy.Schedules;
        using TorchSharp.Modules;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;

        namespace Placements;

        /// <summary>Four stages in a V on two ranks: rank 0 runs stages 0 and 3, rank 1 stages 1 and 2.</summary>
        [Pipeline(Schedule = ScheduleKind.ZeroBubbleV, StagesPerRank = 2, Microbatches = 4)]
        public sealed partial class VChain : Module<Tensor, Tensor>
        {
            [SplitInto(4)] private readonly ModuleList<Linear> layers = new ModuleList<Linear>(Linear(4, 4), Linear(4, 4), Linear(4, 4), Linear(4, 4));
            public VChain() : base(nameof(VChain)) { RegisterComponents(); }
            public override Tensor forward(Tensor x)
            {
                var skip = x;
                foreach (var layer in layers) x = layer.forward(x).tanh();
                return x + skip; // skip goes from stage 0 to stage 3, both on rank 0: no message
            }
        }
        """;

    [Fact]
    public void VPlacementGeneratesTheReviewedCodeAndCompilesCleanly()
    {
        var result = GeneratorHarness.Run(VModel);
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompileErrors());
        string code = result.Render();
        Assert.Contains("//   3 on rank 0: ", code);
        Assert.Contains("/// In the build-time ZeroBubbleV table, pipeline rank 0 runs it, with stage 3.", code);
        Assert.Contains("/// In the build-time ZeroBubbleV table, pipeline rank 1 runs it, with stage 1.", code);
        Snapshot.Match(code, "VPlacement");
    }

    private static PipelinePlan PlanOf(GeneratorHarness.Result result, string model) =>
        result.Run.Results.Single().TrackedSteps[TrackingNames.Plan].SelectMany(s => s.Outputs)
            .Select(o => ((PlanResult)o.Value).Plan).Single(p => p?.Type.Name == model)!;

    [Theory]
    [InlineData("OneFOneBChain", ScheduleKind.OneFOneB, 4, 1)]
    [InlineData("InterleavedChain", ScheduleKind.Interleaved1F1B, 8, 2)]
    [InlineData("LoopedBfsChain", ScheduleKind.LoopedBFS, 4, 2)]
    [InlineData("InterleavedZeroBubbleChain", ScheduleKind.InterleavedZeroBubble, 4, 2)]
    [InlineData("ZeroBubbleVChain", ScheduleKind.ZeroBubbleV, 8, 2)]
    [InlineData("DualPipeVChain", ScheduleKind.DualPipeV, 8, 2)]
    public void EachStageIsOnTheRankThePlacementGivesAndItsCommentsSaySo(string model, ScheduleKind kind, int stages, int stagesPerRank)
    {
        string source = System.IO.File.ReadAllText(System.IO.Path.Combine(GeneratorHarness.RepositoryRoot(), "tests", "ParityApp", "Models", "ScheduleChains.cs"));
        var result = GeneratorHarness.Run(source);
        var plan = PlanOf(result, model);
        var ranks = SchedulePlacement.Ranks(kind, stages, stagesPerRank);
        Assert.Equal(ranks, plan.Stages.Select(s => s.Rank).ToArray());
        Assert.Equal(stages / stagesPerRank, plan.RankCount);
        Assert.Equal(kind.ToString(), plan.Schedule.ToString());

        var files = result.Run.Results.Single().GeneratedSources.Where(f => f.HintName.StartsWith($"ParityApp.Models.{model}.", System.StringComparison.Ordinal)).ToList();
        foreach (var file in files)
        {
            string text = file.SourceText.ToString();
            Assert.Contains($"// Schedule: {kind}, ", text);
            Assert.Contains($" {stagesPerRank} stage(s) per rank, {stages / stagesPerRank} rank(s).", text);
            for (int stage = 0; stage < stages; stage++) Assert.Contains($"//   {stage} on rank {ranks[stage]}: ", text);
        }
        for (int stage = 0; stage < stages; stage++)
        {
            string text = files.Single(f => f.HintName.EndsWith($".Stage{stage}.g.cs", System.StringComparison.Ordinal)).SourceText.ToString();
            var others = Enumerable.Range(0, stages).Where(s => s != stage && ranks[s] == ranks[stage]).ToArray();
            string with = others.Length switch
            {
                0 => "",
                1 => $", with stage {others[0]}",
                _ => $", with stages {string.Join(", ", others[..^1])} and {others[^1]}",
            };
            Assert.Contains($"/// In the build-time {kind} table, pipeline rank {ranks[stage]} runs it{with}.", text);
        }
        string pipeline = files.Single(f => f.HintName.EndsWith(".Pipeline.g.cs", System.StringComparison.Ordinal)).SourceText.ToString();
        Assert.Contains($"{stages} stages on {stages / stagesPerRank} ranks, {stagesPerRank} per rank;", pipeline);
        Assert.Contains($"one line per rank ({stages / stagesPerRank} ranks of {stagesPerRank} stage(s))", pipeline);
    }

    [Fact]
    public void CustomTableThatPlacesStagesUnevenlyIsDescribedAsItIs()
    {
        const string model = """
            using Pippy;
            using TorchSharp.Modules;
            using static TorchSharp.torch;
            using static TorchSharp.torch.nn;
            [Pipeline(ScheduleFile = "uneven.csv")]
            public sealed partial class Net : Module<Tensor, Tensor>
            {
                [SplitInto(3)] private readonly ModuleList<Linear> layers = new ModuleList<Linear>(Linear(2, 2), Linear(2, 2), Linear(2, 2));
                public Net() : base("Net") { RegisterComponents(); }
                public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.forward(x); return x; }
            }
            """;
        // Rank 0 runs stages 0 and 1, rank 1 stage 2.
        const string csv = "0F0,1F0,0F1,1F1,1B0,0B0,1B1,0B1\n2F0,2B0,2F1,2B1\n";
        var result = GeneratorHarness.RunWithFiles(new[] { model }, new[] { ("/project/uneven.csv", csv) });
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompileErrors());
        Assert.Equal(new[] { 0, 0, 1 }, PlanOf(result, "Net").Stages.Select(s => s.Rank).ToArray());
        string code = result.Render();
        Assert.Contains("// Schedule: Custom, 2 microbatches, 2 rank(s) of 2, 1 stage(s).", code);
        Assert.Contains("//   2 on rank 1: ", code);
        Assert.Contains("3 stages on 2 ranks of 2, 1 stages;", code);
        Assert.Contains("one line per rank (2 ranks of 2, 1 stage(s))", code);
        Assert.Contains("/// In the build-time Custom table, pipeline rank 0 runs it, with stage 1.", code);
        Assert.Contains("/// In the build-time Custom table, pipeline rank 1 runs it.", code);
        Assert.Contains("A custom table runs only as written", code);
        Assert.DoesNotContain("A run with another microbatch count computes its table", code);
    }
}
