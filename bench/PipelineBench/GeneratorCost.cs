extern alias generator;
using System;
using System.Diagnostics;
using System.Linq;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace PipelineBench;

/// <summary>What the generator costs a build: a 96-block model with 8 split points, added to a compilation, and its caching after an unrelated edit.</summary>
public static class GeneratorCost
{
    /// <summary>The last measured run's time per step.</summary>
    public static string StepTimes { get; private set; } = "";

    public static string Measure(int repeats = 7)
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

        // Build time added by the generator: a fresh compilation bound and checked with the generator's output,
        // against the same without the generator (alternating, so that drift hits both alike).
        var with = new double[repeats];
        var without = new double[repeats];
        GeneratorDriver driver = NewDriver();
        Compilation Fresh() => compilation.RemoveAllSyntaxTrees().AddSyntaxTrees(CSharpSyntaxTree.ParseText(source, parse));
        Fresh().GetDiagnostics(); // warm up the compiler and the generator
        NewDriver().RunGeneratorsAndUpdateCompilation(Fresh(), out var warm, out _);
        warm.GetDiagnostics();
        for (int i = 0; i < repeats; i++)
        {
            var plain = Fresh();
            var clock = Stopwatch.StartNew();
            plain.GetDiagnostics();
            without[i] = clock.Elapsed.TotalMilliseconds;

            var generated = Fresh();
            clock.Restart();
            driver = NewDriver().RunGeneratorsAndUpdateCompilation(generated, out var output, out _);
            output.GetDiagnostics();
            with[i] = clock.Elapsed.TotalMilliseconds;
        }
        var steps = driver.GetRunResult().Results.Single().TrackedSteps;
        string StepTime(string name) => steps.TryGetValue(name, out var runs) ? $"{runs.Sum(r => r.ElapsedTime.TotalMilliseconds):F1} ms" : "-";
        StepTimes = $"Parse {StepTime(generator::Pippy.Generators.TrackingNames.Parse)}, Plan {StepTime(generator::Pippy.Generators.TrackingNames.Plan)}, " +
                    $"Emit {StepTime(generator::Pippy.Generators.TrackingNames.Emit)}, whole run {driver.GetTimingInfo().ElapsedTime.TotalMilliseconds:F1} ms";
        if (Environment.GetEnvironmentVariable("PIPPY_BENCH_TREES") == "1")
        {
            var gen = driver.GetRunResult().GeneratedTrees;
            foreach (var tree in gen)
            {
                var c = Fresh().AddSyntaxTrees(tree);
                var sw = Stopwatch.StartNew();
                c.GetDiagnostics();
                Console.WriteLine($"{System.IO.Path.GetFileName(tree.FilePath)}: {sw.Elapsed.TotalMilliseconds:F1} ms ({tree.Length} chars)");
            }
            var all = Fresh().AddSyntaxTrees(gen);
            var sw2 = Stopwatch.StartNew(); all.GetDiagnostics(); Console.WriteLine($"all: {sw2.Elapsed.TotalMilliseconds:F1} ms");
            var sw3 = Stopwatch.StartNew(); Fresh().GetDiagnostics(); Console.WriteLine($"none: {sw3.Elapsed.TotalMilliseconds:F1} ms");
        }
        var added = with.Zip(without, (a, b) => a - b).OrderBy(t => t).ToArray();
        Array.Sort(with);
        Array.Sort(without);
        var result = driver.GetRunResult().Results.Single();
        var driverCompilation = Fresh();
        driver = NewDriver().RunGenerators(driverCompilation);
        int stages = result.GeneratedSources.Count(s => s.HintName.Contains(".Stage"));
        var errors = result.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).ToArray();

        var edited = driverCompilation.AddSyntaxTrees(CSharpSyntaxTree.ParseText("namespace Other { static class Unrelated { } }", parse));
        var clockEdit = Stopwatch.StartNew();
        var rerun = driver.RunGenerators(edited).GetRunResult().Results.Single();
        double editMs = clockEdit.Elapsed.TotalMilliseconds;
        var ours = new[] { generator::Pippy.Generators.TrackingNames.Parse, generator::Pippy.Generators.TrackingNames.Plan, generator::Pippy.Generators.TrackingNames.Emit };
        var reasons = ours.SelectMany(name => rerun.TrackedSteps[name].SelectMany(s => s.Outputs).Select(o => $"{name}: {o.Reason}")).Distinct().ToArray();
        bool cached = ours.SelectMany(name => rerun.TrackedSteps[name]).SelectMany(s => s.Outputs)
            .All(o => o.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged);
        return $"96 blocks, 8 split points: {stages} stages generated{(errors.Length > 0 ? $" ({errors.Length} errors!)" : "")}. " +
               $"Build time added by the generator (a fresh compilation bound and checked with the generated code, minus the same without the generator; {repeats} pairs): " +
               $"**{added[repeats / 2]:F1} ms** median, {added[0]:F1} ms fastest (with {with[repeats / 2]:F1} ms, without {without[repeats / 2]:F1} ms, medians). " +
               $"Last run by step: {StepTimes}. Running the generator again after an unrelated edit: {editMs:F1} ms, every step cached: {cached} ({string.Join(", ", reasons)})";
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
