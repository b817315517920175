extern alias generator;
using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Xunit;
using TrackingNames = generator::Pippy.Generators.TrackingNames;

namespace Pippy.Tests.Generator;

public class IncrementalTests
{
    private static readonly string[] Steps = { TrackingNames.Parse, TrackingNames.Plan, TrackingNames.Emit };

    [Fact]
    public void UnrelatedEditReusesEveryCachedStep()
    {
        var compilation = GeneratorHarness.Compile(GeneratorHarness.QuickstartModel());
        var driver = GeneratorHarness.Driver().RunGenerators(compilation);

        var edited = compilation.AddSyntaxTrees(CSharpSyntaxTree.ParseText("namespace Other { internal static class Unrelated { } }", GeneratorHarness.ParseOptions));
        var rerun = driver.RunGenerators(edited).GetRunResult().Results.Single();

        foreach (var name in Steps)
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

    [Theory]
    [InlineData("samples/Quickstart/MyNetwork.cs")]
    [InlineData("tests/ParityApp/Models/TinyGpt.cs")]
    [InlineData("tests/ParityApp/Models/SharedBlock.cs")]
    public void StepOutputsHoldNoSymbolsSyntaxOrCompilations(string model)
    {
        var source = System.IO.File.ReadAllText(System.IO.Path.Combine(GeneratorHarness.RepositoryRoot(), model));
        var run = GeneratorHarness.Driver().RunGenerators(GeneratorHarness.Compile(source)).GetRunResult().Results.Single();
        foreach (var name in Steps)
            foreach (var output in run.TrackedSteps[name].SelectMany(step => step.Outputs))
                Walk(output.Value, $"{name} output", new HashSet<object>(ReferenceEqualityComparer.Instance));
    }

    /// <summary>Fails on any ISymbol, SyntaxNode, SemanticModel or Compilation reachable from <paramref name="value"/>.</summary>
    private static void Walk(object? value, string path, HashSet<object> seen)
    {
        if (value is null || value is string || value.GetType().IsPrimitive || value.GetType().IsEnum) return;
        Assert.False(value is ISymbol or SyntaxNode or SyntaxTree or SemanticModel or Compilation or Location,
            $"{path} holds a {value.GetType().Name}, which keeps the compilation alive and defeats caching");
        if (!value.GetType().IsValueType && !seen.Add(value)) return;
        if (value is IEnumerable items)
        {
            int i = 0;
            foreach (var item in items) Walk(item, $"{path}[{i++}]", seen);
            return;
        }
        foreach (var field in value.GetType().GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
            Walk(field.GetValue(value), $"{path}.{field.Name}", seen);
    }
}
