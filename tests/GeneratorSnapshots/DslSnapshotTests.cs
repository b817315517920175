using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using Xunit;

namespace Pippy.Tests.Generator;

/// <summary>
/// The scenario models of tests/ParityApp (the ones the MPI parity tests run), each generated, snapshotted, and
/// compiled with its user code: zero errors and zero warnings.
/// </summary>
public class DslSnapshotTests
{
    public static TheoryData<string> Models() => new() { "Residual", "FanOut", "TokensAndMasks", "ThreeInputs", "SixInputs", "SharedBlock", "TinyGpt", "DeepStack", "SequenceFirst", "Nested", "UsingEncoder", "Vae", "SequentialCnn", "MarkedSplits", "OptionalInput", "PlainArguments" };

    [Theory]
    [MemberData(nameof(Models))]
    public void ScenarioGeneratesTheReviewedCodeAndCompilesCleanly(string model)
    {
        string source = File.ReadAllText(Path.Combine(GeneratorHarness.RepositoryRoot(), "tests", "ParityApp", "Models", model + ".cs"));
        var result = GeneratorHarness.Run(source);
        Assert.DoesNotContain(result.GeneratorDiagnostics, d => d.Severity > DiagnosticSeverity.Info);
        var problems = result.Output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning).Select(d => d.ToString()).ToArray();
        Assert.Empty(problems);
        Snapshot.Match(result.Render(), model);
    }

    [Fact]
    public void SharedSubmoduleIsReportedAsReplicated()
    {
        string source = File.ReadAllText(Path.Combine(GeneratorHarness.RepositoryRoot(), "tests", "ParityApp", "Models", "SharedBlock.cs"));
        var diagnostic = Assert.Single(GeneratorHarness.Run(source).GeneratorDiagnostics);
        Assert.Equal("PIPPY0008", diagnostic.Id);
        Assert.Equal(DiagnosticSeverity.Info, diagnostic.Severity);
        Assert.Contains("'shared' is used in stages 0 and 2", diagnostic.GetMessage());
    }

    [Fact]
    public void SubmoduleUsedThroughAMethodByBothStagesIsReplicated()
    {
        string source = File.ReadAllText(Path.Combine(GeneratorHarness.RepositoryRoot(), "tests", "ParityApp", "Models", "Vae.cs"));
        var diagnostic = Assert.Single(GeneratorHarness.Run(source).GeneratorDiagnostics);
        Assert.Equal("PIPPY0008", diagnostic.Id);
        Assert.Contains("'norm' is used in stages 0 and 1", diagnostic.GetMessage());
    }
}
