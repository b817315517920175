using System.Collections.Generic;
using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using ParityApp.Models;
using Pippy.Runtime;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Pippy.Tests.Generator;

/// <summary>
/// Submodules that forward reaches through the model's own methods and property getters belong to the stage of the
/// forward statement that makes the call: never a stage that runs a submodule whose parameters no rank trains.
/// </summary>
public class MethodFollowingTests
{
    private const string Usings = """
        using Pippy;
        using TorchSharp.Modules;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;
        namespace Helpers;
        """;

    /// <summary>Helper-method idioms beyond the VAE: a chain of methods, a property getter, a split inside a chain.</summary>
    private const string HelperModels = Usings + """
        [Pipeline(Microbatches = 2)]
        public sealed partial class Chained : Module<Tensor, Tensor>
        {
            private readonly Linear a = Linear(4, 4);
            [SplitEnd] private readonly Linear b = Linear(4, 4);
            private readonly Linear c = Linear(4, 4);
            private readonly Linear gate = Linear(4, 4);
            public Chained() : base(nameof(Chained)) { RegisterComponents(); }
            private Tensor Inner(Tensor x) => b.forward(a.forward(x));
            private Tensor Outer(Tensor x) { var h = Inner(x); return h.relu(); }
            private Tensor Gate => gate.weight!.sum();
            public override Tensor forward(Tensor x)
            {
                x = Outer(x);
                return c.forward(x) * Gate;
            }
        }
        """;

    [Fact]
    public void SplitEndInsideAChainOfMethodsEndsTheStageAfterTheCallingStatement()
    {
        var spec = GeneratorHarness.Parse(HelperModels);
        Assert.Equal(new[] { "a:Outer", "b:Outer" }, spec.Statements[0].MethodUses.Select(u => $"{u.Member}:{u.Method}").OrderBy(s => s));
        Assert.Equal(new[] { "gate:Gate" }, spec.Statements[1].MethodUses.Select(u => $"{u.Member}:{u.Method}"));

        var result = GeneratorHarness.Run(HelperModels);
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompileErrors());
        Assert.Equal(new[] { new[] { "a", "b" }, new[] { "c", "gate" } }, StageModules(result.Output, "Chained"));
    }

    [Fact]
    public void VaeStagesHoldTheSubmodulesOfEncodeAndDecode()
    {
        string source = File.ReadAllText(Path.Combine(GeneratorHarness.RepositoryRoot(), "tests", "ParityApp", "Models", "Vae.cs"));
        var result = GeneratorHarness.Run(source);
        Assert.Equal(new[] { new[] { "fc1", "fc21", "fc22", "norm" }, new[] { "fc3", "fc4", "norm" } }, StageModules(result.Output, "Vae"));
    }

    [Fact]
    public void VaeComposedStagesHoldEveryParameterAndGiveTheModelsGradients()
    {
        torch.manual_seed(0);
        var model = new Vae();
        torch.manual_seed(1);
        var x = torch.rand(6, 12);
        var eps = torch.randn(6, 4);
        var stages = Vae.Pipeline.CreateStages(model);
        Assert.Equal(model.named_parameters().Select(p => p.name).OrderBy(n => n),
            stages.SelectMany(s => s.named_parameters()).Select(p => p.name).Distinct().OrderBy(n => n));

        model.forward(x, eps).Item1.pow(2).sum().backward();
        var expected = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        model.zero_grad();
        LocalPipeline.Forward(Vae.Pipeline.Graph, stages, x, eps).pow(2).sum().backward();
        foreach (var (name, parameter) in stages.SelectMany(s => s.named_parameters()).DistinctBy(p => p.name))
            Assert.True(parameter.grad!.allclose(expected[name], rtol: 0, atol: 0), $"gradient of {name} differs");
    }

    /// <summary>The models of the repository, as the projects that build them group their files.</summary>
    public static TheoryData<string> SourceSets() => new()
    {
        "tests/ParityApp/Models",
        "tests/ParityApp/Grid/GridModels.cs",
        "samples/Quickstart/MyNetwork.cs",
        "samples/Gpt/CharGpt.cs",
        "samples/Training/Models.cs",
        "inline",
    };

    /// <summary>
    /// The invariant, on the generator's output: every submodule member that forward reaches, directly or through any
    /// method or getter of the model (found here by a walk of its own, which follows every call), is held by a stage.
    /// </summary>
    [Theory]
    [MemberData(nameof(SourceSets))]
    public void EverySubmoduleForwardReachesBelongsToAStage(string set)
    {
        string root = GeneratorHarness.RepositoryRoot();
        string full = Path.Combine(root, set);
        var sources = set == "inline" ? new[] { HelperModels }
            : Directory.Exists(full) ? Directory.GetFiles(full, "*.cs").OrderBy(f => f).Select(File.ReadAllText).ToArray()
            : new[] { File.ReadAllText(full) };
        // ScheduleChains' custom table, an AdditionalFiles item of ParityApp.
        string csv = Path.Combine(root, "tests", "ParityApp", "Schedules", "custom.csv");
        var result = GeneratorHarness.RunWithFiles(sources, new[] { ("Schedules/custom.csv", File.ReadAllText(csv)) });
        Assert.DoesNotContain(result.GeneratorDiagnostics, d => d.Severity == DiagnosticSeverity.Error);
        var output = result.Output;
        var models = output.SyntaxTrees.Take(sources.Length)
            .SelectMany(t => t.GetRoot().DescendantNodes().OfType<ClassDeclarationSyntax>()
                .Where(c => c.AttributeLists.SelectMany(l => l.Attributes).Any(a => a.Name.ToString() == "Pipeline"))
                .Select(c => output.GetSemanticModel(t).GetDeclaredSymbol(c)!))
            .ToList();
        Assert.NotEmpty(models);
        foreach (var model in models)
        {
            var held = StageModules(output, model.Name).SelectMany(s => s).ToHashSet();
            var missing = Reached(output, model).Where(m => !held.Contains(m)).ToArray();
            Assert.True(missing.Length == 0, $"{model.Name}: forward reaches {string.Join(", ", missing)}, which no stage holds");
        }
    }

    /// <summary>Submodule members of <paramref name="model"/> that forward uses, following every method and getter of the model.</summary>
    private static HashSet<string> Reached(Compilation compilation, INamedTypeSymbol model)
    {
        var moduleType = compilation.GetTypeByMetadataName("TorchSharp.torch+nn+Module");
        bool IsModule(ITypeSymbol? type)
        {
            for (var t = type; t is not null; t = t.BaseType)
                if (SymbolEqualityComparer.Default.Equals(t, moduleType)) return true;
            return false;
        }
        var reached = new HashSet<string>();
        var seen = new HashSet<ISymbol>(SymbolEqualityComparer.Default);
        var work = new Stack<IMethodSymbol>(model.GetMembers("forward").OfType<IMethodSymbol>().Where(m => m.IsOverride));
        while (work.Count > 0)
        {
            var method = work.Pop();
            if (!seen.Add(method)) continue;
            foreach (var syntax in method.DeclaringSyntaxReferences.Select(r => r.GetSyntax()))
            {
                var semanticModel = compilation.GetSemanticModel(syntax.SyntaxTree);
                foreach (var name in syntax.DescendantNodes().OfType<IdentifierNameSyntax>())
                {
                    var symbol = semanticModel.GetSymbolInfo(name).Symbol;
                    if (symbol is null || !SymbolEqualityComparer.Default.Equals(symbol.ContainingType, model)) continue;
                    if (symbol is IFieldSymbol field && IsModule(field.Type)) reached.Add(field.Name);
                    else if (symbol is IPropertySymbol property && IsModule(property.Type)) reached.Add(property.Name);
                    else if (symbol is IPropertySymbol { GetMethod: { } getter }) work.Push(getter);
                    else if (symbol is IMethodSymbol called) work.Push(called.OriginalDefinition);
                }
            }
        }
        return reached;
    }

    /// <summary>Each stage's submodules, as the generated Pipeline.Graph of <paramref name="model"/> lists them.</summary>
    private static string[][] StageModules(Compilation output, string model)
    {
        var tree = output.SyntaxTrees.Single(t => Path.GetFileName(t.FilePath) is var file
            && (file == $"{model}.Pipeline.g.cs" || file.EndsWith($".{model}.Pipeline.g.cs")));
        return tree.GetRoot().DescendantNodes().OfType<ObjectCreationExpressionSyntax>()
            .Where(c => c.Type.ToString() == "global::Pippy.StageSpec")
            .Select(c => c.ArgumentList!.Arguments[3].DescendantNodes().OfType<LiteralExpressionSyntax>().Select(l => l.Token.ValueText).OrderBy(n => n).ToArray())
            .ToArray();
    }
}
