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

    public static string Measure(int repeats = 15, int warmUps = 25)
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

        // Build time added by the generator: a fresh compilation bound and checked with a fresh generator run and its output,
        // against the same without the generator (alternating, so that drift hits both alike). The compiler and the generator
        // are warmed first: `dotnet build` compiles in a long-lived compiler server whose code is optimized, while this
        // process starts with Roslyn's NuGet assemblies unjitted, and the first dozen compilations here measure the JIT.
        var with = new double[repeats];
        var without = new double[repeats];
        var generatorRuns = new double[repeats];
        var driverRuns = new double[repeats];
        GeneratorDriver driver = NewDriver();
        // Garbage of the previous compilations is collected outside the timed regions, so that neither side pays for the other's.
        static void Settle() { GC.Collect(); GC.WaitForPendingFinalizers(); GC.Collect(); }
        Compilation Fresh() => compilation.RemoveAllSyntaxTrees().AddSyntaxTrees(CSharpSyntaxTree.ParseText(source, parse));
        for (int i = -warmUps; i < repeats; i++)
        {
            var plain = Fresh();
            Settle();
            var clock = Stopwatch.StartNew();
            plain.GetDiagnostics();
            double plainMs = clock.Elapsed.TotalMilliseconds;

            var generated = Fresh();
            Settle();
            clock.Restart();
            driver = NewDriver().RunGeneratorsAndUpdateCompilation(generated, out var output, out _);
            double runMs = clock.Elapsed.TotalMilliseconds;
            output.GetDiagnostics();
            if (i < 0) continue;
            driverRuns[i] = runMs;
            with[i] = clock.Elapsed.TotalMilliseconds;
            without[i] = plainMs;
            generatorRuns[i] = driver.GetTimingInfo().ElapsedTime.TotalMilliseconds;
        }
        var steps = driver.GetRunResult().Results.Single().TrackedSteps;
        string StepTime(string name) => steps.TryGetValue(name, out var runs) ? $"{runs.Sum(r => r.ElapsedTime.TotalMilliseconds):F1} ms" : "-";
        Array.Sort(generatorRuns);
        Array.Sort(driverRuns);
        StepTimes = $"Parse {StepTime(generator::Pippy.Generators.TrackingNames.Parse)}, Plan {StepTime(generator::Pippy.Generators.TrackingNames.Plan)}, " +
                    $"Emit {StepTime(generator::Pippy.Generators.TrackingNames.Emit)}, whole run {driver.GetTimingInfo().ElapsedTime.TotalMilliseconds:F1} ms " +
                    $"(median of the {repeats} runs {generatorRuns[repeats / 2]:F1} ms; a fresh driver's RunGeneratorsAndUpdateCompilation {driverRuns[repeats / 2]:F1} ms)";
        var added = with.Zip(without, (a, b) => a - b).OrderBy(t => t).ToArray();
        Array.Sort(with);
        Array.Sort(without);
        var result = driver.GetRunResult().Results.Single();
        var driverCompilation = Fresh();
        driver = NewDriver().RunGenerators(driverCompilation);
        int stages = result.GeneratedSources.Count(s => s.HintName.Contains(".Stage"));
        var errors = result.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).ToArray();

        // Unrelated edits one after another, each a new compilation for the same driver (as an editor or an incremental build does).
        var editTimes = new double[repeats];
        GeneratorRunResult rerun = default!;
        var edited = driverCompilation;
        for (int i = 0; i < repeats; i++)
        {
            edited = edited.AddSyntaxTrees(CSharpSyntaxTree.ParseText($"namespace Other {{ static class Unrelated{i} {{ }} }}", parse));
            Settle();
            var clockEdit = Stopwatch.StartNew();
            driver = driver.RunGenerators(edited);
            editTimes[i] = clockEdit.Elapsed.TotalMilliseconds;
            rerun = driver.GetRunResult().Results.Single();
        }
        Array.Sort(editTimes);
        double editMs = editTimes[repeats / 2];
        var ours = new[] { generator::Pippy.Generators.TrackingNames.Parse, generator::Pippy.Generators.TrackingNames.Plan, generator::Pippy.Generators.TrackingNames.Emit };
        var reasons = ours.SelectMany(name => rerun.TrackedSteps[name].SelectMany(s => s.Outputs).Select(o => $"{name}: {o.Reason}")).Distinct().ToArray();
        bool cached = ours.SelectMany(name => rerun.TrackedSteps[name]).SelectMany(s => s.Outputs)
            .All(o => o.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged);
        return $"96 blocks, 8 split points: {stages} stages generated{(errors.Length > 0 ? $" ({errors.Length} errors!)" : "")}. " +
               $"Build time added by the generator (a fresh compilation bound and checked with the generated code, minus the same without the generator; {repeats} pairs): " +
               $"**{added[repeats / 2]:F1} ms** median, {added[0]:F1} ms fastest (with {with[repeats / 2]:F1} ms, without {without[repeats / 2]:F1} ms, medians). " +
               $"Last run by step: {StepTimes}. Running the generator again after an unrelated edit: {editMs:F1} ms (median of {repeats} edits), every step cached: {cached} ({string.Join(", ", reasons)})";
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
