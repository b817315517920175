extern alias generator;
using System.Linq;
using Microsoft.CodeAnalysis;
using Xunit;
using generator::Pippy.Generators.Model;
using Descriptors = generator::Pippy.Generators.Diagnostics.DiagnosticDescriptors;
using Planner = generator::Pippy.Generators.Planning.StagePlanner;

namespace Pippy.Tests.Generator;

/// <summary>One test per diagnostic of the catalog: the mistake, the ID, and words of the message that say the fix.</summary>
public class DiagnosticTests
{
    private const string Usings = """
        using Pippy;
        using TorchSharp.Modules;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;
        namespace Mistakes;
        """;

    /// <summary>A three-stage model; the members, forward and attribute can be replaced one at a time.</summary>
    private static string Model(
        string forward = "x = a.forward(x); x = b.forward(x); return c.forward(x);",
        string members = "[SplitEnd] private readonly Linear a; [SplitEnd] private readonly Linear b; private readonly Linear c;",
        string attribute = "[Pipeline]",
        string declaration = "public sealed partial class Net : Module<Tensor, Tensor>",
        string signature = "public override Tensor forward(Tensor x)") => Usings + $$"""
        {{attribute}}
        {{declaration}}
        {
            {{members}}
            public Net() : base("Net") { a = Linear(4, 4); b = Linear(4, 4); c = Linear(4, 4); RegisterComponents(); }
            {{signature}} { {{forward}} }
        }
        """;

    private static Diagnostic Single(string source, string id, params string[] messageParts)
    {
        var result = GeneratorHarness.Run(source);
        var diagnostic = Assert.Single(result.GeneratorDiagnostics, d => d.Id == id);
        string message = diagnostic.GetMessage();
        foreach (var part in messageParts) Assert.Contains(part, message);
        Assert.NotEqual(Location.None, diagnostic.Location);
        return diagnostic;
    }

    [Fact]
    public void ValidModelHasNoDiagnostics() => Assert.Empty(GeneratorHarness.Run(Model()).GeneratorDiagnostics);

    [Fact]
    public void PIPPY0001_NotPartial() =>
        Single(Model(declaration: "public sealed class Net : Module<Tensor, Tensor>"), "PIPPY0001", "'Net' must be declared partial");

    [Fact]
    public void PIPPY0002_NotAModule() =>
        Single(Usings + "[Pipeline] public partial class Plain { public Tensor forward(Tensor x) => x; }", "PIPPY0002", "TorchSharp.torch.nn.Module<...>");

    [Fact]
    public void PIPPY0003_NoForward() =>
        Single(Usings + "[Pipeline] public abstract partial class Net : Module<Tensor, Tensor> { protected Net() : base(\"Net\") { } }", "PIPPY0003", "no 'forward' override");

    [Fact]
    public void PIPPY0004_SplitEndNotUsed() =>
        Single(Model(forward: "x = a.forward(x); return c.forward(x);"), "PIPPY0004", "'b' is not used", "call it in forward or remove the attribute");

    [Fact]
    public void PIPPY0005_SplitEndOnLastStatementLeavesAnEmptyStage() =>
        Single(Model(members: "[SplitEnd] private readonly Linear a; private readonly Linear b; [SplitEnd] private readonly Linear c;"),
            "PIPPY0005", "'c' is called in the last statement", "remove the attribute");

    [Fact]
    public void PIPPY0005_TwoSplitEndsInOneStatementLeaveAnEmptyStage() =>
        Single(Model(forward: "x = b.forward(x.relu_() + a.forward(x)); return c.forward(x);"), "PIPPY0005", "'a' and 'b' are called in the same statement"); // x.relu_() runs first, so a cannot be hoisted

    [Fact]
    public void PIPPY0006_NonTensorCrossesABoundary() =>
        Single(Model(forward: "var n = (int)x.shape[0]; x = a.forward(x); x = b.forward(x) * n; return c.forward(x);"),
            "PIPPY0006", "'n' of type int flows from stage 0 into stage 1", "compute it inside stage 1");

    [Fact]
    public void PIPPY0006_PlainArgumentAssignedByAnEarlierStage() =>
        Single(Model(signature: "public override Tensor forward(Tensor x, int n)", declaration: "public sealed partial class Net : Module<Tensor, int, Tensor>",
                forward: "n = n + 1; x = a.forward(x) * n; x = b.forward(x) * n; return c.forward(x);"),
            "PIPPY0006", "'n' of type int flows from stage 0 into stage 1", "compute it inside stage 1");

    [Fact]
    public void PIPPY0007_UnsupportedSignature() =>
        Single(Model(signature: "public override Tensor forward(Tensor x, int[] n)",
                declaration: "public sealed partial class Net : Module<Tensor, int[], Tensor>"),
            "PIPPY0007", "parameter 'n' has type int[]", "bool, char, an integer type, float, double, string or an enum", "pass other data as tensors");

    [Fact]
    public void PIPPY0007_ANullableNumberIsNotAPlainArgument() =>
        Single(Model(signature: "public override Tensor forward(Tensor x, int? n)",
                declaration: "public sealed partial class Net : Module<Tensor, int?, Tensor>"),
            "PIPPY0007", "parameter 'n' has type int?");

    [Fact]
    public void PlainArgumentsOfEveryKindAreGivenToTheStagesThatReadThemAndCompile()
    {
        // Each stage unpacks only the plain arguments it reads, by their position in forward; an argument the stage
        // assigns before reading stays its own local.
        var result = GeneratorHarness.Run(Usings + """
            public enum Kind { A, B }
            [Pipeline]
            public sealed partial class Net : Module<Tensor, bool, long, string, Kind, float, Tensor>
            {
                [SplitEnd] private readonly Linear a; [SplitEnd] private readonly Linear b; private readonly Linear c;
                public Net() : base("Net") { a = Linear(4, 4); b = Linear(4, 4); c = Linear(4, 4); RegisterComponents(); }
                public override Tensor forward(Tensor x, bool flag, long count, string name, Kind kind, float scale)
                {
                    x = a.forward(flag ? x : -x);
                    x = b.forward(x) * count + (name.Length > 2 ? 1 : 0);
                    scale = 2;
                    return c.forward(kind == Kind.A ? x * scale : x);
                }
            }
            """);
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.Output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning).Select(d => d.ToString()));
        string code = result.Render();
        Assert.Contains("bool flag = Argument<bool>(1);", code);
        Assert.Contains("long count = Argument<long>(2);", code);
        Assert.Contains("string name = Argument<string>(3);", code);
        Assert.Contains("global::Mistakes.Kind kind = Argument<global::Mistakes.Kind>(4);", code);
        Assert.Contains("float scale = default!;", code);
        Assert.DoesNotContain("Argument<float>", code);
        Assert.Contains("arguments: new string[] { \"count\", \"name\" }", code);
        Assert.Contains("new global::Pippy.ModelArgument(\"kind\", 4, typeof(global::Mistakes.Kind))", code);
    }

    [Fact]
    public void PIPPY0007_ATupleOfFiveTensorsIsRefused() =>
        Single(Model(signature: "public override (Tensor, Tensor, Tensor, Tensor, Tensor) forward(Tensor x)",
                declaration: "public sealed partial class Net : Module<Tensor, (Tensor, Tensor, Tensor, Tensor, Tensor)>",
                forward: "x = a.forward(x); x = b.forward(x); var y = c.forward(x); return (y, y, y, y, y);"),
            "PIPPY0007", "return type has type", "a tuple of 2 to 4 tensors");

    [Fact]
    public void ATupleOfFourTensorsIsTheLargestOutputAndCompiles()
    {
        var result = GeneratorHarness.Run(Model(signature: "public override (Tensor, Tensor, Tensor, Tensor) forward(Tensor x)",
            declaration: "public sealed partial class Net : Module<Tensor, (Tensor, Tensor, Tensor, Tensor)>",
            forward: "x = a.forward(x); x = b.forward(x); var y = c.forward(x); return (y, y * 2, y.tanh(), x);"));
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.Output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning).Select(d => d.ToString()));
    }

    [Fact]
    public void PIPPY0008_SharedSubmoduleIsReplicatedWithAnInfo()
    {
        var diagnostic = Single(Model(forward: "x = a.forward(c.forward(x)); x = b.forward(x); return c.forward(x);"), "PIPPY0008", "'c' is used in stages 0 and 2", "gradients are summed");
        Assert.Equal(DiagnosticSeverity.Info, diagnostic.Severity);
    }

    [Fact]
    public void PIPPY0009_ReturnBeforeTheLastStage() =>
        Single(Model(forward: "x = a.forward(x); if (x.dim() == 0) return x; x = b.forward(x); return c.forward(x);"),
            "PIPPY0009", "inside stage 1", "only the last stage may return");

    [Fact]
    public void PIPPY0010_InvalidSchedule() =>
        Single(Model(attribute: "[Pipeline(Microbatches = 0)]"), "PIPPY0010", "GPipe", "at least one microbatch");

    [Fact]
    public void PIPPY0011_SingleStageWarning()
    {
        var diagnostic = Single(Model(members: "private readonly Linear a; private readonly Linear b; private readonly Linear c;"), "PIPPY0011", "one stage");
        Assert.Equal(DiagnosticSeverity.Warning, diagnostic.Severity);
    }

    [Fact]
    public void PIPPY0025_AUsingDeclarationOfAGuardBeforeTheLastStage() =>
        Single(Model(forward: "using var guard = no_grad(); x = a.forward(x); x = b.forward(x); return c.forward(x);"),
            "PIPPY0025", "'using var guard'", "stage 0", "using block");

    [Fact]
    public void UsingDeclarationsOfTensorsAndDisposeScopesAnywhereAndOfAGuardInTheLastStageAreAccepted()
    {
        var result = GeneratorHarness.Run(Model(forward:
            "using var scope = TorchSharp.torch.NewDisposeScope(); using var h = a.forward(x); using var g = b.forward(h); using var guard = no_grad(); return scope.MoveToOuter(c.forward(g));"));
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.Output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning));
    }

    private const string BatchNormMembers =
        "[SplitEnd] private readonly Linear a; [SplitEnd] private readonly Linear b; private readonly Linear c; private readonly Block block = new Block();";
    private const string BatchNormBlock = """

        public sealed class Block : Module<Tensor, Tensor>
        {
            private readonly BatchNorm1d norm = BatchNorm1d(4);
            public Block() : base("Block") { RegisterComponents(); }
            public override Tensor forward(Tensor x) => norm.forward(x);
        }
        """;

    [Fact]
    public void PIPPY0026_BatchNormInsideABlockIsAWarning()
    {
        var source = Model(members: BatchNormMembers, forward: "x = a.forward(x); x = b.forward(block.forward(x)); return c.forward(x);") + BatchNormBlock;
        var diagnostic = Single(source, "PIPPY0026", "'block.norm'", "BatchNorm1d", "one microbatch at a time", "eval", "GroupNorm or LayerNorm", "Microbatches = 1", "NoWarn");
        Assert.Equal(DiagnosticSeverity.Warning, diagnostic.Severity);
        // Only a warning: the stages are still generated and compile.
        var result = GeneratorHarness.Run(source);
        Assert.Contains(result.Output.SyntaxTrees, t => t.FilePath.EndsWith("Stage1.g.cs", System.StringComparison.Ordinal));
        Assert.Empty(result.Output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
    }

    [Fact]
    public void PIPPY0026_NotForOneMicrobatchNorForAnUnusedOrNonBatchNorm()
    {
        var forward = "x = a.forward(x); x = b.forward(block.forward(x)); return c.forward(x);";
        Assert.DoesNotContain(GeneratorHarness.Run(Model(attribute: "[Pipeline(Microbatches = 1)]", members: BatchNormMembers, forward: forward) + BatchNormBlock).GeneratorDiagnostics, d => d.Id == "PIPPY0026");
        Assert.DoesNotContain(GeneratorHarness.Run(Model(members: BatchNormMembers) + BatchNormBlock).GeneratorDiagnostics, d => d.Id == "PIPPY0026");
        Assert.DoesNotContain(GeneratorHarness.Run(Model(members: BatchNormMembers.Replace("new Block()", "LayerNorm(4)").Replace("Block block", "LayerNorm block"), forward: forward)).GeneratorDiagnostics, d => d.Id == "PIPPY0026");
    }

    [Fact]
    public void PIPPY0012_GenericModel() =>
        Single(Model(declaration: "public sealed partial class Net<T> : Module<Tensor, Tensor>"), "PIPPY0012", "is generic");

    [Fact]
    public void PIPPY0013_SplitEndNotAModule() =>
        Single(Model(members: "[SplitEnd] private readonly Linear a; [SplitEnd] private readonly Linear b; private readonly Linear c; [SplitEnd] private readonly int width = 4;"),
            "PIPPY0013", "'width' has type int");

    [Fact]
    public void PIPPY0000_InternalErrorIsReportedNotThrown()
    {
        // A spec no parser makes (a statement reads a variable the spec does not list) makes the planner fail inside;
        // it must come back as a diagnostic, since a generator exception would only be warning CS8785 and no output.
        var parsed = GeneratorHarness.Parse(Model());
        var broken = parsed with { Variables = parsed.Variables.Where(v => v.Name != "x").ToEquatableArray() };
        var result = Planner.Plan(broken);
        Assert.Null(result.Plan);
        var diagnostic = Assert.Single(result.Diagnostics);
        Assert.Equal("PIPPY0000", diagnostic.Id);
        Assert.Contains("KeyNotFoundException", diagnostic.ToDiagnostic().GetMessage());
    }

    [Fact]
    public void PIPPY0014_SplitInsideABranch() =>
        Single(Model(forward: "if (x.dim() > 1) { x = a.forward(x); } x = b.forward(x); return c.forward(x);"), "PIPPY0014", "'a' is called inside an if, switch or loop");

    [Fact]
    public void PIPPY0014_SplitInsideAConditionalExpression() =>
        Single(Model(forward: "x = x.dim() > 1 ? a.forward(x) : x; x = b.forward(x); return c.forward(x);"), "PIPPY0014", "'a' is called inside");

    [Fact]
    public void PIPPY0015_SplitEndUsedTwice() =>
        Single(Model(forward: "x = a.forward(x); x = a.forward(x); x = b.forward(x); return c.forward(x);"), "PIPPY0015", "'a' is used 2 times");

    [Fact]
    public void PIPPY0024_ForwardCanEndWithoutAReturn()
    {
        var diagnostic = Single(Model(forward: "x = a.forward(x); x = b.forward(x); x = c.forward(x);"), "PIPPY0024", "forward of 'Net'", "end every path of forward with a return");
        // Nothing is emitted: the last stage would not compile (CS0161) as the user's forward does not.
        Assert.Empty(GeneratorHarness.Run(Model(forward: "x = a.forward(x); x = b.forward(x); if (x.numel() > 0) return c.forward(x);")).Run.Results.Single().GeneratedSources);
        Assert.NotEqual(Location.None, diagnostic.Location);
    }

    [Fact]
    public void PIPPY0016_RefLocal() =>
        Single(Model(forward: "ref Tensor r = ref x; x = a.forward(r); x = b.forward(x); return c.forward(x);"), "PIPPY0016", "a ref local", "use a plain local");

    [Fact]
    public void PIPPY0016_Yield() =>
        Single(Usings + """
            [Pipeline]
            public sealed partial class Net : Module<Tensor, System.Collections.Generic.IEnumerable<Tensor>>
            {
                [SplitEnd] private readonly Linear a = Linear(4, 4);
                private readonly Linear b = Linear(4, 4);
                public Net() : base("Net") { RegisterComponents(); }
                public override System.Collections.Generic.IEnumerable<Tensor> forward(Tensor x) { x = a.forward(x); yield return b.forward(x); }
            }
            """, "PIPPY0016", "yield", "return the result");

    [Fact]
    public void PIPPY0017_TiedWeightGroupWithOneMember() =>
        Single(Model(members: "[SplitEnd, TiedWeight(\"emb\")] private readonly Linear a; [SplitEnd] private readonly Linear b; private readonly Linear c;"),
            "PIPPY0017", "[TiedWeight(\"emb\")] has 1 member(s)");

    [Fact]
    public void PIPPY0018_TiedWeightNotAModule() =>
        Single(Model(members: "[SplitEnd] private readonly Linear a; [SplitEnd] private readonly Linear b; private readonly Linear c; [TiedWeight(\"emb\")] private readonly Tensor? table = null;"),
            "PIPPY0018", "'table' has type");

    [Fact]
    public void PIPPY0019_SplitIntoNotAModuleList() =>
        Single(Model(members: "[SplitEnd] private readonly Linear a; [SplitEnd, SplitInto(2)] private readonly Linear b; private readonly Linear c;"),
            "PIPPY0019", "'b' has type TorchSharp.Modules.Linear", "ModuleList<T>");

    [Fact]
    public void PIPPY0019_SaysASequentialIsAcceptedToo() =>
        Single(Model(members: "[SplitEnd] private readonly Linear a; [SplitEnd, SplitInto(2)] private readonly Linear b; private readonly Linear c;"),
            "PIPPY0019", "or a Sequential whose forward one statement calls");

    [Fact]
    public void PIPPY0005_SplitEndOnAReturnedSequentialSuggestsSplitInto() =>
        Single(Usings + SequentialModel("[SplitEnd]", "=> layers.forward(x);"),
            "PIPPY0005", "'layers' is called in the last statement", "replace [SplitEnd] with [SplitInto(k)]");

    [Fact]
    public void PIPPY0005_SplitEndOnAnyOtherLastSubmoduleStillSaysRemoveTheAttribute() =>
        Assert.DoesNotContain("[SplitInto(k)]", Single(Model(members: "[SplitEnd] private readonly Linear a; private readonly Linear b; [SplitEnd] private readonly Linear c;"),
            "PIPPY0005", "remove the attribute").GetMessage());

    [Fact]
    public void PIPPY0021_SplitIntoSequentialCalledInsideALargerExpression() =>
        Single(Usings + SequentialModel("[SplitInto(2)]", "{ x = layers.forward(x).tanh(); return x; }"),
            "PIPPY0021", "a Sequential used by a statement other than", "'x = layers.forward(x);' or 'return layers.forward(x);'");

    [Fact]
    public void PIPPY0029_SplitIntoSequentialSubclassWithItsOwnForward() =>
        Single(Usings + """
            public sealed class Gated : Sequential
            {
                public Gated() : base(("fc1", Linear(4, 4)), ("fc2", Linear(4, 4))) { }
                public override Tensor forward(Tensor x) => base.forward(x) * x.sigmoid();
            }

            [Pipeline]
            public sealed partial class Net : Module<Tensor, Tensor>
            {
                [SplitInto(2)] private readonly Gated layers = new Gated();
                public Net() : base("Net") => RegisterComponents();
                public override Tensor forward(Tensor x) => layers.forward(x);
            }
            """, "PIPPY0029", "'layers' is a Mistakes.Gated, which derives from Sequential and overrides forward", "put its children in a plain Sequential");

    [Fact]
    public void PIPPY0021_SplitIntoSequentialCalledTwice() =>
        Single(Usings + SequentialModel("[SplitInto(2)]", "{ x = layers.forward(x); return layers.forward(x); }"), "PIPPY0021", "used by 2 statements");

    [Theory]
    [InlineData("=> layers.forward(x);")]
    [InlineData("{ return layers.forward(x); }")]
    [InlineData("{ return this.layers.forward(x); }")]
    [InlineData("{ x = layers.forward(x); return x; }")]
    [InlineData("{ var h = x * 2; h = layers.forward(h); return h.tanh(); }")]
    public void SplitIntoSequentialInEveryAcceptedFormCompilesCleanly(string body)
    {
        var result = GeneratorHarness.Run(Usings + SequentialModel("[SplitInto(2)]", body));
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.Output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning));
        string generated = result.Render();
        Assert.Contains("new global::Pippy.Runtime.StageSequential(\"layers\", model.layers, parts: 2, part: 1)", generated);
    }

    private static string SequentialModel(string attribute, string body) => $$"""
        [Pipeline]
        public sealed partial class Cnn : Module<Tensor, Tensor>
        {
            {{attribute}} private readonly Sequential layers = Sequential(("fc1", Linear(4, 4)), ("act", ReLU()), ("fc2", Linear(4, 4)));
            public Cnn() : base("Cnn") { RegisterComponents(); }
            public override Tensor forward(Tensor x) {{body}}
        }
        """;

    [Fact]
    public void PIPPY0020_SplitIntoFewerThanTwo() =>
        Single(Usings + ListModel("[SplitInto(1)]", "foreach (var l in layers) x = l.forward(x); return x;"), "PIPPY0020", "[SplitInto(1)] on 'layers'");

    [Fact]
    public void PIPPY0021_SplitIntoListNotRunByOneLoop() =>
        Single(Usings + ListModel("[SplitInto(2)]", "x = layers[0].forward(x); foreach (var l in layers) x = l.forward(x); return x;"), "PIPPY0021", "used by 2 statements");

    [Fact]
    public void PIPPY0023_SplitIntoFarTooMany() =>
        Single(Usings + ListModel("[SplitInto(int.MaxValue)]", "foreach (var l in layers) x = l.forward(x); return x;"), "PIPPY0023", "[SplitInto(2147483647)] on 'layers'");

    [Fact]
    public void PIPPY0022_ScheduleFileNotAmongAdditionalFiles() =>
        Single(Model(attribute: "[Pipeline(ScheduleFile = \"missing.csv\")]"), "PIPPY0022", "ScheduleFile = \"missing.csv\"", "<AdditionalFiles Include=\"missing.csv\" />");

    [Fact]
    public void PIPPY0004_NamesTheMethodThatUsesTheMember() =>
        Single(Model(forward: "x = a.forward(x); return c.forward(x);",
                members: "[SplitEnd] private readonly Linear a; [SplitEnd] private readonly Linear b; private readonly Linear c; private Tensor Unused(Tensor x) => b.forward(x);"),
            "PIPPY0004", "'b' is not used", "used in 'Unused', which forward does not call", "call it in forward or remove the attribute");

    [Fact]
    public void PIPPY0028_VirtualMethodUsingSubmodules() =>
        Single(Model(forward: "x = a.forward(x); x = b.forward(x); return Head(x);", declaration: "public partial class Net : Module<Tensor, Tensor>",
                members: "[SplitEnd] private readonly Linear a; [SplitEnd] private readonly Linear b; private readonly Linear c; protected virtual Tensor Head(Tensor x) => c.forward(x);"),
            "PIPPY0028", "method 'Head' (a derived class may override it)", "'c'", "no rank would train", "make 'Head' non-virtual");

    [Fact]
    public void PIPPY0028_RecursiveMethodUsingSubmodules() =>
        Single(Model(forward: "x = a.forward(x); x = b.forward(x); return Deep(x, 2);",
                members: "[SplitEnd] private readonly Linear a; [SplitEnd] private readonly Linear b; private readonly Linear c; private Tensor Deep(Tensor x, int n) => n == 0 ? x : Deep(c.forward(x), n - 1);"),
            "PIPPY0028", "the recursive method 'Deep'", "'c'", "into a loop");

    [Fact]
    public void PIPPY0028_DelegateStoredInAField() =>
        Single(Usings + """
            [Pipeline]
            public sealed partial class Net : Module<Tensor, Tensor>
            {
                [SplitEnd] private readonly Linear a = Linear(4, 4);
                private readonly Linear c = Linear(4, 4);
                private readonly System.Func<Tensor, Tensor> head;
                public Net() : base("Net") { head = t => c.forward(t); RegisterComponents(); }
                public override Tensor forward(Tensor x) { x = a.forward(x); return head(x); }
            }
            """, "PIPPY0028", "the delegate stored in 'head'", "'c'", "instead of a delegate");

    [Fact]
    public void PIPPY0028_MethodOfAnotherClassHandedTheModel() =>
        Single(Usings + """
            internal static class Heads { public static Tensor Apply(Net net, Tensor x) => net.c.forward(x); }
            [Pipeline]
            public sealed partial class Net : Module<Tensor, Tensor>
            {
                [SplitEnd] private readonly Linear a = Linear(4, 4);
                internal readonly Linear c = Linear(4, 4);
                public Net() : base("Net") { RegisterComponents(); }
                public override Tensor forward(Tensor x) { x = a.forward(x); return Heads.Apply(this, x); }
            }
            """, "PIPPY0028", "'Heads.Apply', a method of another class that is handed the model", "'c'", "pass the submodules themselves");

    [Fact]
    public void HelpersThatUseNoSubmoduleAreFineEvenWhereTheyCannotBeFollowed() =>
        Assert.Empty(GeneratorHarness.Run(Model(forward: "x = a.forward(Scale(x)); x = b.forward(Twice(x, 1)); return c.forward(x);",
            declaration: "public partial class Net : Module<Tensor, Tensor>",
            members: "[SplitEnd] private readonly Linear a; [SplitEnd] private readonly Linear b; private readonly Linear c; "
                + "protected virtual Tensor Scale(Tensor x) => x * 2; private Tensor Twice(Tensor x, int n) => n == 0 ? x : Twice(x * 2, n - 1);")).GeneratorDiagnostics);

    [Fact]
    public void PIPPY0027_SplitEndInAMethodCalledFromTwoStatements() =>
        Single(Model(forward: "x = Enc(x); x = b.forward(x); x = Enc(x); return c.forward(x);",
                members: "[SplitEnd] private readonly Linear a; [SplitEnd] private readonly Linear b; private readonly Linear c; private Tensor Enc(Tensor x) => a.forward(x).relu();"),
            "PIPPY0027", "'a' is used inside 'Enc', which forward calls from 2 statements", "call 'Enc' from one statement");

    [Fact]
    public void PIPPY0014_SplitEndInAMethodCalledInsideABranch() =>
        Single(Model(forward: "if (x.dim() > 1) x = Enc(x); x = b.forward(x); return c.forward(x);",
                members: "[SplitEnd] private readonly Linear a; [SplitEnd] private readonly Linear b; private readonly Linear c; private Tensor Enc(Tensor x) => a.forward(x);"),
            "PIPPY0014", "'a' is called inside");

    private static string ListModel(string attribute, string forward) => $$"""
        [Pipeline]
        public sealed partial class Stack : Module<Tensor, Tensor>
        {
            {{attribute}} private readonly ModuleList<Linear> layers = new ModuleList<Linear>(Linear(4, 4), Linear(4, 4));
            public Stack() : base("Stack") { RegisterComponents(); }
            public override Tensor forward(Tensor x) { {{forward}} }
        }
        """;

    [Fact]
    public void PIPPY0030_RecomputeOnATensor() =>
        Single(Model(members: "[SplitEnd] private readonly Linear a; [SplitEnd] private readonly Linear b; private readonly Linear c; [Recompute] private readonly Tensor scale = ones(4);"),
            "PIPPY0030", "[Recompute] member 'scale' has type TorchSharp.torch.Tensor", "put it on the submodule");

    [Fact]
    public void PIPPY0031_RecomputeOnASubmoduleOnlyAMethodCalls() =>
        Single(Model(members: "[SplitEnd] private readonly Linear a; [SplitEnd, Recompute] private readonly Linear b; private readonly Linear c; private Tensor Middle(Tensor x) => b.forward(x);",
                forward: "x = a.forward(x); x = Middle(x); return c.forward(x);"),
            "PIPPY0031", "'b' is used by forward only through a method", "call it in forward itself");

    [Fact]
    public void PIPPY0031_RecomputeOnASubmoduleForwardDoesNotUse() =>
        Single(Model(members: "[SplitEnd] private readonly Linear a; [SplitEnd] private readonly Linear b; private readonly Linear c; [Recompute] private readonly Linear unused = Linear(4, 4);"),
            "PIPPY0031", "'unused' is not used by forward");

    [Fact]
    public void PIPPY0032_RecomputedCallWithANonTensorArgument() =>
        Single(Usings + """
            public sealed class Scaled : Module<Tensor, double, Tensor>
            {
                public Scaled() : base("Scaled") { }
                public override Tensor forward(Tensor x, double factor) => x * factor;
            }

            [Pipeline]
            public sealed partial class Net : Module<Tensor, Tensor>
            {
                [SplitEnd] private readonly Linear a = Linear(4, 4);
                [Recompute] private readonly Scaled scaled = new Scaled();
                public Net() : base("Net") => RegisterComponents();
                public override Tensor forward(Tensor x) { x = a.forward(x); return scaled.forward(x, 2.0); }
            }
            """, "PIPPY0032", "'scaled.forward(x, 2.0)'", "passes '2.0', which is not a tensor", "pass only tensors");

    /// <summary>Every form a [Recompute] call may take runs through BlockRecomputation, and the stages compile.</summary>
    [Fact]
    public void RecomputedCallsInEveryFormGenerateTheReviewedCodeAndCompileCleanly()
    {
        var result = GeneratorHarness.Run(Usings + """
            public sealed class Gate : Module<Tensor, Tensor, Tensor>
            {
                private readonly Linear layer = Linear(4, 4);
                public Gate() : base("Gate") => RegisterComponents();
                public override Tensor forward(Tensor h, Tensor skip) => (layer.forward(h) + skip).tanh();
            }

            [Pipeline]
            public sealed partial class Net : Module<Tensor, Tensor>
            {
                [SplitEnd, Recompute] private readonly Linear first = Linear(4, 4);
                [Recompute, SplitInto(2)] private readonly ModuleList<Gate> gates = new ModuleList<Gate>(new Gate(), new Gate(), new Gate());
                [Recompute] private readonly ModuleList<Linear> extra = new ModuleList<Linear>(Linear(4, 4), Linear(4, 4));
                [Recompute] private readonly Gate mix = new Gate();
                [Recompute, SplitInto(2)] private readonly Sequential tail = Sequential(("fc1", Linear(4, 4)), ("act", ReLU()), ("fc2", Linear(4, 4)));
                public Net() : base("Net") => RegisterComponents();
                public override Tensor forward(Tensor x)
                {
                    var h = this.first.forward(x);
                    var skip = h;
                    foreach (var gate in gates) h = gate.forward(h, skip: skip);
                    for (int i = 0; i < extra.Count; i++) h = extra[i].call(h).relu();
                    h = mix.forward(h, skip);
                    return tail.forward(h);
                }
            }
            """);
        Assert.DoesNotContain(result.GeneratorDiagnostics, d => d.Severity > DiagnosticSeverity.Info);
        Assert.Empty(result.Output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning).Select(d => d.ToString()));
        string code = result.Render();
        Assert.DoesNotContain("first.forward(x)", code.Replace("__block.forward", ""));
        Assert.Contains("global::Pippy.Runtime.BlockRecomputation.Run(extra[i], static (__block, __tensors) => __block.call(__tensors[0]), h).relu()", code);
        Assert.Contains("global::Pippy.Runtime.BlockRecomputation.Run(gate, static (__block, __tensors) => __block.forward(__tensors[0], skip: __tensors[1]), h, skip)", code);
        Assert.Contains("h = global::Pippy.Runtime.BlockRecomputation.Run(tail, static (__block, __tensors) => __block.forward(__tensors[0]), h);", code);
        Snapshot.Match(code, "Recompute");
    }

    // [SplitBegin] and the inline marker PipelineSplit.Here(): the same diagnostics as [SplitEnd] where they fit.
    private const string SplitBeginMembers = "private readonly Linear a; [SplitBegin] private readonly Linear b; private readonly Linear c;";

    [Fact]
    public void SplitBeginAndTheInlineMarkerCutWithoutDiagnostics()
    {
        Assert.Empty(GeneratorHarness.Run(Model(members: SplitBeginMembers)).GeneratorDiagnostics);
        Assert.Empty(GeneratorHarness.Run(Model(forward: "x = a.forward(x); PipelineSplit.Here(); x = b.forward(x); return c.forward(x);",
            members: "private readonly Linear a; private readonly Linear b; private readonly Linear c;")).GeneratorDiagnostics);
    }

    [Fact]
    public void PIPPY0004_SplitBeginNotUsed() =>
        Single(Model(forward: "x = a.forward(x); return c.forward(x);", members: SplitBeginMembers), "PIPPY0004", "[SplitBegin] member 'b' is not used");

    [Fact]
    public void PIPPY0005_SplitBeginOnTheFirstStatementLeavesStageZeroEmpty() =>
        Single(Model(members: "[SplitBegin] private readonly Linear a; private readonly Linear b; private readonly Linear c;"),
            "PIPPY0005", "Stage 0 of 'Net'", "[SplitBegin] member 'a' is called in the first statement", "remove the attribute");

    [Fact]
    public void PIPPY0005_SplitEndThenSplitBeginOnTheNextStatementLeaveAnEmptyStage() =>
        Single(Model(members: "[SplitEnd] private readonly Linear a; [SplitBegin] private readonly Linear b; private readonly Linear c;"),
            "PIPPY0005", "[SplitEnd] member 'a' and [SplitBegin] member 'b' both split forward after its statement 1", "keep one of the two");

    [Fact]
    public void PIPPY0005_SplitMarkerAsTheFirstStatement() =>
        Single(Model(forward: "PipelineSplit.Here(); x = a.forward(x); x = b.forward(x); return c.forward(x);"),
            "PIPPY0005", "Stage 0 of 'Net'", "PipelineSplit.Here() is the first statement of forward");

    [Fact]
    public void PIPPY0005_SplitMarkerAsTheLastStatement() =>
        Single(Model(forward: "x = a.forward(x); x = b.forward(x); return c.forward(x); PipelineSplit.Here();"),
            "PIPPY0005", "PipelineSplit.Here() is the last statement of forward");

    [Fact]
    public void PIPPY0005_SplitMarkerRightAfterASplitEnd() =>
        Single(Model(forward: "x = a.forward(x); PipelineSplit.Here(); x = b.forward(x); return c.forward(x);"),
            "PIPPY0005", "[SplitEnd] member 'a' and the PipelineSplit.Here() after statement 1 of forward both split forward after its statement 1");

    [Fact]
    public void PIPPY0013_SplitBeginNotAModule() =>
        Single(Model(members: "[SplitEnd] private readonly Linear a; [SplitEnd] private readonly Linear b; private readonly Linear c; [SplitBegin] private readonly int width = 4;"),
            "PIPPY0013", "[SplitBegin] member 'width' has type int", "whose call begins the stage");

    [Fact]
    public void PIPPY0014_SplitBeginInsideABranch() =>
        Single(Model(forward: "x = a.forward(x); if (x.dim() > 1) { x = b.forward(x); } return c.forward(x);", members: SplitBeginMembers),
            "PIPPY0014", "[SplitBegin] member 'b' is called inside an if, switch or loop");

    [Fact]
    public void PIPPY0015_SplitBeginUsedTwice() =>
        Single(Model(forward: "x = a.forward(x); x = b.forward(x); x = b.forward(x); return c.forward(x);", members: SplitBeginMembers),
            "PIPPY0015", "[SplitBegin] member 'b' is used 2 times");

    [Fact]
    public void PIPPY0027_SplitBeginInAMethodCalledFromTwoStatements() =>
        Single(Model(forward: "x = a.forward(x); x = Mid(x); x = Mid(x); return c.forward(x);",
                members: SplitBeginMembers + " private Tensor Mid(Tensor x) => b.forward(x).relu();"),
            "PIPPY0027", "[SplitBegin] member 'b' is used inside 'Mid'", "ambiguous before which one the stage begins");

    [Fact]
    public void PIPPY0033_SplitMarkerInsideABranch() =>
        Single(Model(forward: "x = a.forward(x); if (x.dim() > 1) { PipelineSplit.Here(); } x = b.forward(x); return c.forward(x);"),
            "PIPPY0033", "inside a block, branch, loop or function of forward", "top level of a [Pipeline] model's forward");

    [Fact]
    public void PIPPY0033_SplitMarkerInsideALambda() =>
        Single(Model(forward: "System.Action split = () => PipelineSplit.Here(); x = a.forward(x); x = b.forward(x); return c.forward(x);"),
            "PIPPY0033", "PipelineSplit.Here() is part of a larger expression");

    [Fact]
    public void PIPPY0033_SplitMarkerInAHelperMethodOfTheModel() =>
        Single(Model(forward: "x = a.forward(x); x = Mid(x); return c.forward(x);",
                members: "[SplitEnd] private readonly Linear a; private readonly Linear b; private readonly Linear c; private Tensor Mid(Tensor x) { PipelineSplit.Here(); return b.forward(x); }"),
            "PIPPY0033", "in 'Net.Mid', which is not the forward of a [Pipeline] model");

    [Fact]
    public void PIPPY0033_SplitMarkerInAClassThatIsNoPipeline() =>
        Single(Usings + """
            public sealed class Plain : Module<Tensor, Tensor>
            {
                public Plain() : base("Plain") { }
                public override Tensor forward(Tensor x) { PipelineSplit.Here(); return x; }
            }
            """, "PIPPY0033", "in 'Plain.forward', which is not the forward of a [Pipeline] model");

    [Fact]
    public void EveryDiagnosticIsDocumentedWhereItsHelpLinkPoints()
    {
        string docs = System.IO.File.ReadAllText(System.IO.Path.Combine(GeneratorHarness.RepositoryRoot(), "docs", "diagnostics.md"));
        foreach (var descriptor in Descriptors.All)
        {
            Assert.Equal($"docs/diagnostics.md#{descriptor.Id.ToLowerInvariant()}", descriptor.HelpLinkUri);
            Assert.Contains($"## {descriptor.Id}\n", docs.Replace("\r\n", "\n"));
            Assert.Contains(descriptor.Title.ToString(), docs);
        }
    }

    [Fact]
    public void EveryDiagnosticOfTheCatalogHasATest()
    {
        var tested = typeof(DiagnosticTests).GetMethods().Select(m => m.Name.Split('_')[0]).Where(n => n.StartsWith("PIPPY")).ToHashSet();
        var missing = Descriptors.All.Select(d => d.Id).Where(id => !tested.Contains(id)).ToArray();
        Assert.Empty(missing);
    }
}
