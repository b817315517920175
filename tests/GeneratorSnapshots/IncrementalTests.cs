extern alias generator;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Xunit;
using TrackingNames = generator::Pippy.Generators.TrackingNames;

namespace Pippy.Tests.Generator;

public class IncrementalTests
{
    [Fact]
    public void UnrelatedEditReusesEveryCachedStep()
    {
        var compilation = GeneratorHarness.Compile(GeneratorHarness.QuickstartModel());
        var driver = GeneratorHarness.Driver().RunGenerators(compilation);

        var edited = compilation.AddSyntaxTrees(CSharpSyntaxTree.ParseText("namespace Other { internal static class Unrelated { } }", GeneratorHarness.ParseOptions));
        var rerun = driver.RunGenerators(edited).GetRunResult().Results.Single();

        foreach (var name in new[] { TrackingNames.Parse, TrackingNames.Plan, TrackingNames.Emit })
        {
            var outputs = rerun.TrackedSteps[name].SelectMany(step => step.Outputs).ToArray();
            Assert.NotEmpty(outputs);
            Assert.All(outputs, output => Assert.True(
                output.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged,
                $"step {name} ran again: {output.Reason}"));
        }
        Assert.All(rerun.TrackedOutputSteps.SelectMany(s => s.Value).SelectMany(s => s.Outputs),
            output => Assert.Equal(IncrementalStepRunReason.Cached, output.Reason));
    }
}
