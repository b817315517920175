extern alias generator;
using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.IO;
using System.Linq;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using PipelineGenerator = generator::Pippy.Generators.PipelineGenerator;

namespace Pippy.Tests.Generator;

/// <summary>Runs the generator on source text in memory, against the real TorchSharp and Pippy assemblies.</summary>
public static class GeneratorHarness
{
    public static readonly CSharpParseOptions ParseOptions = new(LanguageVersion.Latest);

    private static readonly ImmutableArray<MetadataReference> References =
        Basic.Reference.Assemblies.Net100.References.All.Cast<MetadataReference>()
            .Append(MetadataReference.CreateFromFile(typeof(TorchSharp.torch).Assembly.Location))
            .Append(MetadataReference.CreateFromFile(typeof(PipelineAttribute).Assembly.Location))
            .Append(MetadataReference.CreateFromFile(typeof(Runtime.PipelineRunner).Assembly.Location))
            .ToImmutableArray();

    public static CSharpCompilation Compile(params string[] sources) =>
        CSharpCompilation.Create(
            "SnapshotInput",
            sources.Select((s, i) => CSharpSyntaxTree.ParseText(s, ParseOptions, path: $"Input{i}.cs")),
            References,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable)
                // As the .NET SDK does: TorchSharp is built for net8.0, whose assembly versions unify with net10.0's.
                .WithSpecificDiagnosticOptions(new[] { "CS1701", "CS1702" }.ToDictionary(id => id, _ => ReportDiagnostic.Suppress)));

    public static GeneratorDriver Driver(params (string Path, string Text)[] additionalFiles) =>
        CSharpGeneratorDriver.Create(
            new[] { new PipelineGenerator().AsSourceGenerator() },
            additionalTexts: additionalFiles.Select(f => (AdditionalText)new InMemoryText(f.Path, f.Text)),
            parseOptions: ParseOptions,
            driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));

    /// <summary>An AdditionalFiles item of the project, in memory.</summary>
    private sealed class InMemoryText(string path, string text) : AdditionalText
    {
        public override string Path => path;
        public override Microsoft.CodeAnalysis.Text.SourceText GetText(System.Threading.CancellationToken cancellationToken = default) =>
            Microsoft.CodeAnalysis.Text.SourceText.From(text);
    }

    public sealed record Result(GeneratorDriverRunResult Run, Compilation Output, ImmutableArray<Diagnostic> GeneratorDiagnostics)
    {
        /// <summary>Generated files in hint-name order, each under a header line.</summary>
        public string Render()
        {
            var text = new StringBuilder();
            foreach (var source in Run.Results.SelectMany(r => r.GeneratedSources).OrderBy(s => s.HintName, StringComparer.Ordinal))
                text.Append("//HintName: ").Append(source.HintName).Append('\n').Append(source.SourceText.ToString().Replace("\r\n", "\n"));
            return text.ToString();
        }

        /// <summary>Errors and warnings of the compilation including the generated code.</summary>
        public string[] CompileErrors() =>
            Output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning).Select(d => d.ToString()).ToArray();

        public string[] Ids() => GeneratorDiagnostics.Select(d => d.Id).ToArray();
    }

    public static Result Run(params string[] sources) => RunWithFiles(sources, Array.Empty<(string, string)>());

    public static Result RunWithFiles(string[] sources, (string Path, string Text)[] additionalFiles)
    {
        var driver = Driver(additionalFiles).RunGeneratorsAndUpdateCompilation(Compile(sources), out var output, out var diagnostics);
        return new Result(driver.GetRunResult(), output, diagnostics);
    }

    /// <summary>The parser's spec of the single [Pipeline] class in <paramref name="source"/>.</summary>
    internal static generator::Pippy.Generators.Model.PipelineModelSpec Parse(string source)
    {
        var run = Driver().RunGenerators(Compile(source)).GetRunResult().Results.Single();
        var output = run.TrackedSteps[generator::Pippy.Generators.TrackingNames.Parse].Single().Outputs.Single().Value;
        return ((generator::Pippy.Generators.Model.ParseResult)output).Spec!;
    }

    /// <summary>The quickstart sample's model source, the one users start from.</summary>
    public static string QuickstartModel() => File.ReadAllText(Path.Combine(RepositoryRoot(), "samples", "Quickstart", "MyNetwork.cs"));

    public static string RepositoryRoot() => Repository.Root();
}
