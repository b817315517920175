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
    public void EmittedTableEqualsTheRuntimeComputedTable(string model, ScheduleKind kind, int stages, int stagesPerRank, int microbatches)
    {
        var run = GeneratorHarness.Driver().RunGenerators(GeneratorHarness.Compile(Chains)).GetRunResult().Results.Single();
        var plan = run.TrackedSteps[TrackingNames.Plan].SelectMany(s => s.Outputs).Select(o => ((PlanResult)o.Value).Plan!).Single(p => p.Type.Name == model);
        var links = ScheduleBuilder.Links(kind, stages, stagesPerRank, Enumerable.Range(0, stages - 1).Select(s => (s, s + 1)));
        var runtime = ScheduleBuilder.Build(kind, links, microbatches);
        Assert.Equal(runtime.Format(), plan.ScheduleLines.ToArray());
        Assert.Equal(stages / stagesPerRank, plan.ScheduleLines.Count);
    }

    [Theory]
    [InlineData("Schedule = ScheduleKind.ZeroBubbleV", "exactly 2 stages per rank in a V")]
    [InlineData("Schedule = ScheduleKind.OneFOneB, Microbatches = 2", "1F1B needs at least as many microbatches as ranks (4)")]
    [InlineData("Schedule = ScheduleKind.Interleaved1F1B, StagesPerRank = 2, Microbatches = 3", "multiple of the rank count (2)")]
    [InlineData("Schedule = ScheduleKind.GPipe, StagesPerRank = 2", "GPipe runs one stage per rank")]
    [InlineData("Schedule = ScheduleKind.LoopedBFS, StagesPerRank = 3", "4 stages cannot be shared evenly by ranks of 3 stages each")]
    public void InvalidScheduleChoiceIsABuildError(string options, string reason)
    {
        var result = GeneratorHarness.Run($$"""
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
        var diagnostic = Assert.Single(result.GeneratorDiagnostics);
        Assert.Equal("PIPPY0010", diagnostic.Id);
        Assert.Contains(reason, diagnostic.GetMessage());
    }
}
