using System.Linq;
using Xunit;

namespace Pippy.Tests.Generator;

public class QuickstartTests
{
    [Fact]
    public void QuickstartModelGeneratesTheReviewedCode()
    {
        var result = GeneratorHarness.Run(GeneratorHarness.QuickstartModel());
        Assert.Empty(result.GeneratorDiagnostics);
        Snapshot.Match(result.Render(), "Quickstart");
    }

    [Fact]
    public void QuickstartGeneratedCodeCompiles()
    {
        var result = GeneratorHarness.Run(GeneratorHarness.QuickstartModel());
        Assert.Empty(result.Output.GetDiagnostics().Where(d => d.Severity >= Microsoft.CodeAnalysis.DiagnosticSeverity.Warning));
        Assert.Equal(4, result.Run.Results.Single().GeneratedSources.Length); // three stages and the Pipeline class
    }
}
