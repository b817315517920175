using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Generator;

/// <summary>
/// The generator never throws: 2,000 model sources mutated as in an editor (deleted tokens and lines, half-typed
/// statements, wrong attribute arguments, missing members, stray tokens), from a fixed seed, each run through the
/// generator. None may end in a generator exception (CS8785) or in PIPPY0000 (the generator's own catch-all); every
/// problem must be a diagnostic. And every mutant the generator accepted (no PIPPY error) is compiled with the code it
/// generated: the generated files must have no compiler error. Errors in the mutated source itself are expected (it
/// is half-typed), and so are their echoes in a stage that copied the statement: the same error (id and message), what
/// follows from it in that file, and anything in a stage cut from a forward that does not parse. Only the generated
/// trees are compiled for diagnostics (their semantic models', not the whole compilation's).
/// </summary>
public class FuzzTests(ITestOutputHelper log)
{
    private static readonly string[] Seeds =
    {
        "samples/Quickstart/MyNetwork.cs", "samples/Training/Models.cs", "samples/Gpt/CharGpt.cs",
        "tests/ParityApp/Models/TinyGpt.cs", "tests/ParityApp/Models/Residual.cs", "tests/ParityApp/Models/FanOut.cs",
        "tests/ParityApp/Models/ThreeInputs.cs", "tests/ParityApp/Models/SharedBlock.cs", "tests/ParityApp/Models/Nested.cs",
        "tests/ParityApp/Models/SequenceFirst.cs", "tests/ParityApp/Models/TokensAndMasks.cs", "tests/ParityApp/Models/DeepStack.cs",
    };

    private static readonly string[] Stray = { "{", "}", "(", ")", ";", "=>", ",", ".", "var ", "return ", "[SplitEnd] ", "x = ", "?", "new ", "foreach (", "out " };

    private static readonly (string From, string[] To)[] AttributeEdits =
    {
        ("[SplitInto(4)]", new[] { "[SplitInto(0)]", "[SplitInto(-3)]", "[SplitInto(\"four\")]", "[SplitInto]", "[SplitInto(4, 5)]", "[SplitInto(int.MaxValue)]" }),
        ("[SplitInto(2)]", new[] { "[SplitInto(1)]", "[SplitInto(100)]", "[SplitInto(null)]" }),
        ("[Pipeline(", new[] { "[Pipeline(Microbatches = 0, ", "[Pipeline(Schedule = (ScheduleKind)99, ", "[Pipeline(StagesPerRank = -1, ", "[Pipeline(ScheduleFile = \"missing.csv\", ", "[Pipeline(Microbatches = \"8\", " }),
        ("[Pipeline]", new[] { "[Pipeline(Microbatches = -1)]", "[Pipeline(StagesPerRank = 0)]", "[Pipeline(Schedule = ScheduleKind.Custom)]", "[Pipeline(Schedule = ScheduleKind.Interleaved1F1B)]" }),
        ("[TiedWeight(\"embedding\")]", new[] { "[TiedWeight(null)]", "[TiedWeight(\"\")]", "[TiedWeight]", "[TiedWeight(\"embedding\", \"nope\")]", "[TiedWeight(42)]" }),
        ("[SplitEnd]", new[] { "[SplitEnd(3)]", "[SplitEnd, SplitEnd]", "" }),
    };

    [Fact]
    public void TwoThousandMutatedModelsGiveDiagnosticsNeverACrash()
    {
        var random = new Random(20261128);
        var seeds = Seeds.Select(p => File.ReadAllText(Path.Combine(GeneratorHarness.RepositoryRoot(), p))).ToArray();
        var clock = Stopwatch.StartNew();
        var compileClock = new Stopwatch();
        var kinds = new Dictionary<string, int>();
        int withPippyDiagnostics = 0, compiled = 0, copiedErrors = 0, afterSyntaxErrors = 0;
        var failures = new List<(string[] Ids, string Report)>();
        for (int i = 0; i < 2000; i++)
        {
            string source = seeds[random.Next(seeds.Length)];
            string kind = "";
            int edits = 1 + random.Next(3);
            for (int e = 0; e < edits; e++) (source, kind) = Mutate(source, random);
            kinds[kind] = kinds.GetValueOrDefault(kind) + 1;

            if (Environment.GetEnvironmentVariable("PIPPY_FUZZ_TRACE") is { Length: > 0 } trace) File.WriteAllText(trace, $"{i} {kind}\n{source}");
            var compilation = GeneratorHarness.Compile(source);
            var driver = GeneratorHarness.Driver().RunGeneratorsAndUpdateCompilation(compilation, out var output, out var diagnostics);
            var result = driver.GetRunResult().Results.Single();
            string where = $"mutant {i} ({kind}):\n{source}";
            Assert.True(result.Exception is null, $"the generator threw {result.Exception} on {where}");
            Assert.DoesNotContain(diagnostics, d => d.Id == "CS8785");
            var internalError = result.Diagnostics.FirstOrDefault(d => d.Id == "PIPPY0000");
            Assert.True(internalError is null, $"PIPPY0000 {internalError?.GetMessage()} on {where}");
            if (result.Diagnostics.Any(d => d.Id.StartsWith("PIPPY", StringComparison.Ordinal))) withPippyDiagnostics++;
            if (result.Diagnostics.Any(d => d.Severity == DiagnosticSeverity.Error)) continue;

            // Accepted: what it generated must compile, whatever the user's own (mutated) source does.
            compileClock.Start();
            try
            {
                var generated = output.SyntaxTrees.Except(compilation.SyntaxTrees).ToArray();
                if (generated.Length == 0) continue;
                compiled++;
                var errors = generated
                    .SelectMany(tree => output.GetSemanticModel(tree).GetDiagnostics())
                    .Where(d => d.Severity == DiagnosticSeverity.Error)
                    .ToArray();
                if (errors.Length == 0) continue;
                // The stages hold the user's own statements: an error the user's source already has (same id and message)
                // comes back in the stage that copied the statement. That one is the user's, not the generator's, and so
                // is what follows from it in the same file (a local of the error type passed on to Outputs(...)).
                var own = new HashSet<(string, string)>(compilation.SyntaxTrees
                    .SelectMany(tree => output.GetSemanticModel(tree).GetDiagnostics())
                    .Where(d => d.Severity == DiagnosticSeverity.Error)
                    .Select(d => (d.Id, d.GetMessage(System.Globalization.CultureInfo.InvariantCulture))));
                bool Copied(Diagnostic d) => own.Contains((d.Id, d.GetMessage(System.Globalization.CultureInfo.InvariantCulture)));
                var withCopies = new HashSet<SyntaxTree?>(errors.Where(Copied).Select(d => d.Location.SourceTree));
                errors = errors.Where(d => !withCopies.Contains(d.Location.SourceTree)).ToArray();
                if (errors.Length == 0) { copiedErrors++; continue; }
                // A forward that does not parse reaches the generator as the parser's error recovery made it (a statement
                // cut in two, a declaration read as an expression): the stage copies that, so its errors differ from the
                // user's but are still the user's syntax error, which the user sees first.
                if (compilation.SyntaxTrees.Any(tree => tree.GetDiagnostics().Any(d => d.Severity == DiagnosticSeverity.Error))) { afterSyntaxErrors++; continue; }
                failures.Add((errors.Select(d => d.Id).Distinct().ToArray(),
                        $"the generator accepted {where}\nbut its output does not compile:\n{string.Join("\n", errors.Take(10).Select(d => d.ToString()))}" +
                        $"\n--- generated ---\n{string.Join("\n", generated.Select(t => $"// {t.FilePath}\n{t}"))}"));
            }
            finally { compileClock.Stop(); }
        }
        log.WriteLine($"2000 mutants in {clock.Elapsed.TotalSeconds:F1} s ({compileClock.Elapsed.TotalSeconds:F1} s of it compiling the accepted ones); {withPippyDiagnostics} with Pippy diagnostics; {compiled} accepted and compiled with their generated code ({copiedErrors} of them with only errors copied from the user's source, {afterSyntaxErrors} with errors after a syntax error of the user's); {string.Join(", ", kinds.Select(k => $"{k.Key} {k.Value}"))}");
        Assert.True(failures.Count == 0,
            $"{failures.Count} accepted mutants generated code that does not compile ({string.Join(", ", failures.SelectMany(f => f.Ids).GroupBy(id => id).Select(g => $"{g.Key} x{g.Count()}"))}); the first:\n" +
            string.Join("\n\n========\n", failures.Take(3).Select(f => f.Report)));
        Assert.True(compiled > 100, $"only {compiled} mutants were accepted: the compile check reaches too few");
        Assert.True(withPippyDiagnostics > 100, $"only {withPippyDiagnostics} mutants got a Pippy diagnostic: the mutations do not reach the annotations");
    }

    private static (string Source, string Kind) Mutate(string source, Random random)
    {
        switch (random.Next(7))
        {
            case 0:
            {
                var tokens = CSharpSyntaxTree.ParseText(source).GetRoot().DescendantTokens().Where(t => t.Span.Length > 0).ToArray();
                var token = tokens[random.Next(tokens.Length)];
                return (source.Remove(token.SpanStart, token.Span.Length), "deleted token");
            }
            case 1:
            {
                int at = random.Next(source.Length / 3, source.Length);
                return (source[..at], "cut off (half-typed)");
            }
            case 2:
            {
                var lines = source.Split('\n').ToList();
                lines.RemoveAt(random.Next(lines.Count));
                return (string.Join('\n', lines), "deleted line");
            }
            case 3:
            {
                var applicable = AttributeEdits.Where(a => source.Contains(a.From)).ToArray();
                if (applicable.Length == 0) goto default;
                var (from, to) = applicable[random.Next(applicable.Length)];
                int index = source.IndexOf(from, StringComparison.Ordinal);
                return (source[..index] + to[random.Next(to.Length)] + source[(index + from.Length)..], "attribute argument");
            }
            case 4:
            {
                // A member the forward uses goes missing, or is renamed in one place only.
                var names = CSharpSyntaxTree.ParseText(source).GetRoot().DescendantNodes()
                    .OfType<Microsoft.CodeAnalysis.CSharp.Syntax.VariableDeclaratorSyntax>().Select(v => v.Identifier).ToArray();
                if (names.Length == 0) goto default;
                var name = names[random.Next(names.Length)];
                return (source.Remove(name.SpanStart, name.Span.Length).Insert(name.SpanStart, name.Text + "Renamed"), "missing member");
            }
            case 5:
            {
                var lines = source.Split('\n').ToList();
                int line = random.Next(lines.Count);
                lines.Insert(line, lines[line]);
                return (string.Join('\n', lines), "duplicated line");
            }
            default:
            {
                int at = random.Next(source.Length);
                return (source.Insert(at, Stray[random.Next(Stray.Length)]), "stray token");
            }
        }
    }
}
