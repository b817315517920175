extern alias generator;
using System;
using System.Diagnostics;
using System.Linq;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace PipelineBench;

/// <summary>What the generator costs a build: a 96-block model with 8 split points, first run and after an unrelated edit.</summary>
public static class GeneratorCost
{
    public static string Measure(int repeats = 5)
    {
        var source = Model(blocks: 96, splits: 8);
        var references = Basic.Reference.Assemblies.Net100.References.All.Cast<MetadataReference>()
            .Append(MetadataReference.CreateFromFile(typeof(TorchSharp.torch).Assembly.Location))
            .Append(MetadataReference.CreateFromFile(typeof(Pippy.PipelineAttribute).Assembly.Location))
            .Append(MetadataReference.CreateFromFile(typeof(Pippy.Runtime.PipelineRunner).Assembly.Location));
        var parse = new CSharpParseOptions(LanguageVersion.Latest);
        var compilation = CSharpCompilation.Create("Bench", new[] { CSharpSyntaxTree.ParseText(source, parse) }, references,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        GeneratorDriver NewDriver() => CSharpGeneratorDriver.Create(new[] { new generator::Pippy.Generators.PipelineGenerator().AsSourceGenerator() },
            parseOptions: parse, driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));

        compilation.GetDiagnostics(); // bind once, as the compiler has before generators run
        var first = new double[repeats];
        GeneratorDriver driver = NewDriver();
        for (int i = 0; i < repeats; i++)
        {
            var fresh = NewDriver();
            var clock = Stopwatch.StartNew();
            driver = fresh.RunGenerators(compilation);
            first[i] = clock.Elapsed.TotalMilliseconds;
        }
        var result = driver.GetRunResult().Results.Single();
        int stages = result.GeneratedSources.Count(s => s.HintName.Contains(".Stage"));
        var errors = result.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).ToArray();

        var edited = compilation.AddSyntaxTrees(CSharpSyntaxTree.ParseText("namespace Other { static class Unrelated { } }", parse));
        var clockEdit = Stopwatch.StartNew();
        var rerun = driver.RunGenerators(edited).GetRunResult().Results.Single();
        double editMs = clockEdit.Elapsed.TotalMilliseconds;
        var ours = new[] { generator::Pippy.Generators.TrackingNames.Parse, generator::Pippy.Generators.TrackingNames.Plan, generator::Pippy.Generators.TrackingNames.Emit };
        var reasons = ours.SelectMany(name => rerun.TrackedSteps[name].SelectMany(s => s.Outputs).Select(o => $"{name}: {o.Reason}")).Distinct().ToArray();
        bool cached = ours.SelectMany(name => rerun.TrackedSteps[name]).SelectMany(s => s.Outputs)
            .All(o => o.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged);
        Array.Sort(first);
        return $"96 blocks, 8 split points: {stages} stages generated{(errors.Length > 0 ? $" ({errors.Length} errors!)" : "")}; " +
               $"first run {first[repeats / 2]:F1} ms (median of {repeats}, fastest {first[0]:F1} ms); after an unrelated edit {editMs:F1} ms, every step cached: {cached} ({string.Join(", ", reasons)})";
    }

    private static string Model(int blocks, int splits)
    {
        var text = new StringBuilder("""
            using Pippy;
            using TorchSharp.Modules;
            using static TorchSharp.torch;
            using static TorchSharp.torch.nn;
            namespace Bench;
            public sealed class Block : Module<Tensor, Tensor>
            {
                private readonly LayerNorm norm = LayerNorm(64);
                private readonly Linear up = Linear(64, 256);
                private readonly Linear down = Linear(256, 64);
                public Block() : base(nameof(Block)) { RegisterComponents(); }
                public override Tensor forward(Tensor x) => x + down.forward(functional.gelu(up.forward(norm.forward(x))));
            }
            [Pipeline]
            public sealed partial class Transformer : Module<Tensor, Tensor>
            {
            """);
        for (int i = 0; i < blocks; i++)
            text.Append(i % (blocks / (splits + 1)) == blocks / (splits + 1) - 1 && i < blocks - 1 ? "    [SplitEnd] " : "    ").Append($"private readonly Block b{i} = new Block();\n");
        text.Append("    public Transformer() : base(nameof(Transformer)) { RegisterComponents(); }\n    public override Tensor forward(Tensor x)\n    {\n");
        for (int i = 0; i < blocks; i++) text.Append($"        x = b{i}.forward(x);\n");
        text.Append("        return x;\n    }\n}\n");
        return text.ToString();
    }
}
