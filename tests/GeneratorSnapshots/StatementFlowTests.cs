extern alias generator;
using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using generator::Pippy.Generators.Parsing;
using Xunit;

namespace Pippy.Tests.Generator;

/// <summary>
/// The parser reads straight-line statements' data flow from their symbols instead of Roslyn's AnalyzeDataFlow (which
/// is quadratic over a long forward): for every statement of every model the tests use, both must agree exactly.
/// </summary>
public class StatementFlowTests
{
    public static TheoryData<string> Sources() => new()
    {
        "tests/ParityApp/Models/Residual.cs", "tests/ParityApp/Models/FanOut.cs", "tests/ParityApp/Models/TokensAndMasks.cs",
        "tests/ParityApp/Models/ThreeInputs.cs", "tests/ParityApp/Models/SharedBlock.cs", "tests/ParityApp/Models/TinyGpt.cs",
        "tests/ParityApp/Models/DeepStack.cs", "tests/ParityApp/Models/SequenceFirst.cs", "tests/ParityApp/Models/Nested.cs",
        "tests/ParityApp/Models/ScheduleChains.cs", "tests/ParityApp/Models/ShapeByData.cs", "samples/Quickstart/MyNetwork.cs",
        "samples/Training/Models.cs",
    };

    private const string Extra = """
        using TorchSharp;
        using static TorchSharp.torch;
        public static class FlowCases
        {
            static int counter;
            public static Tensor Run(Tensor x, Tensor y, bool flag, Tensor? maybe)
            {
                var a = x + y;
                Tensor b;
                b = a * 2;
                a = a + b;
                var (c, d) = (a, b);
                x = flag ? a : b;
                var e = maybe ?? x;
                counter = 3;
                int i = 0;
                i++;
                var f = x.add(y).relu();
                Tensor g = f, h = g + f;
                System.Func<Tensor, Tensor> twice = t => t + e;
                y = twice(h);
                return y + c + d;
            }
        }
        """;

    [Theory]
    [MemberData(nameof(Sources))]
    public void StraightLineStatementsGiveRoslynsDataFlow(string path)
    {
        var compilation = GeneratorHarness.Compile(File.ReadAllText(Path.Combine(GeneratorHarness.RepositoryRoot(), path)), Extra);
        int compared = 0;
        foreach (var tree in compilation.SyntaxTrees)
        {
            var model = compilation.GetSemanticModel(tree);
            foreach (var method in tree.GetRoot().DescendantNodes().OfType<MethodDeclarationSyntax>())
            {
                var nodes = method.Body?.Statements.Cast<SyntaxNode>() ?? (method.ExpressionBody is { } arrow ? new SyntaxNode[] { arrow.Expression } : new SyntaxNode[0]);
                foreach (var node in nodes)
                {
                    // The parser's lookup: names answered from declarations and members where it can.
                    var ours = StatementFlow.Analyze(node, new SymbolLookup(model, method, (IMethodSymbol)model.GetDeclaredSymbol(method)!, model.GetDeclaredSymbol(method)!.ContainingType));
                    var roslyn = node is ExpressionSyntax e ? model.AnalyzeDataFlow(e)! : model.AnalyzeDataFlow((StatementSyntax)node)!;
                    string Names(System.Collections.Generic.IEnumerable<ISymbol> s) => string.Join(",", s.Where(x => x is not IParameterSymbol { IsThis: true }).Select(x => x.Name));
                    string where = $"{method.Identifier.Text}: {node}";
                    Assert.True(Names(roslyn.DataFlowsIn) == Names(ours.DataFlowsIn), $"{where}: in {Names(roslyn.DataFlowsIn)} vs {Names(ours.DataFlowsIn)}");
                    Assert.True(Names(roslyn.WrittenInside) == Names(ours.WrittenInside), $"{where}: written {Names(roslyn.WrittenInside)} vs {Names(ours.WrittenInside)}");
                    Assert.True(Names(roslyn.AlwaysAssigned) == Names(ours.AlwaysAssigned), $"{where}: always {Names(roslyn.AlwaysAssigned)} vs {Names(ours.AlwaysAssigned)}");
                    Assert.True(Names(roslyn.VariablesDeclared) == Names(ours.VariablesDeclared), $"{where}: declared {Names(roslyn.VariablesDeclared)} vs {Names(ours.VariablesDeclared)}");
                    compared++;
                }
            }
        }
        Assert.True(compared > 15, $"only {compared} statements compared");
    }
}
