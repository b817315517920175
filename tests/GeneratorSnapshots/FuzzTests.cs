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
/// problem must be a diagnostic.
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
        var kinds = new Dictionary<string, int>();
        int withPippyDiagnostics = 0;
        for (int i = 0; i < 2000; i++)
        {
            string source = seeds[random.Next(seeds.Length)];
            string kind = "";
            int edits = 1 + random.Next(3);
            for (int e = 0; e < edits; e++) (source, kind) = Mutate(source, random);
            kinds[kind] = kinds.GetValueOrDefault(kind) + 1;

            if (Environment.GetEnvironmentVariable("PIPPY_FUZZ_TRACE") is { Length: > 0 } trace) File.WriteAllText(trace, $"{i} {kind}\n{source}");
            var compilation = GeneratorHarness.Compile(source);
            var driver = GeneratorHarness.Driver().RunGeneratorsAndUpdateCompilation(compilation, out _, out var diagnostics);
            var result = driver.GetRunResult().Results.Single();
            string where = $"mutant {i} ({kind}):\n{source}";
            Assert.True(result.Exception is null, $"the generator threw {result.Exception} on {where}");
            Assert.DoesNotContain(diagnostics, d => d.Id == "CS8785");
            var internalError = result.Diagnostics.FirstOrDefault(d => d.Id == "PIPPY0000");
            Assert.True(internalError is null, $"PIPPY0000 {internalError?.GetMessage()} on {where}");
            if (result.Diagnostics.Any(d => d.Id.StartsWith("PIPPY", StringComparison.Ordinal))) withPippyDiagnostics++;
        }
        log.WriteLine($"2000 mutants in {clock.Elapsed.TotalSeconds:F1} s; {withPippyDiagnostics} with Pippy diagnostics; {string.Join(", ", kinds.Select(k => $"{k.Key} {k.Value}"))}");
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
