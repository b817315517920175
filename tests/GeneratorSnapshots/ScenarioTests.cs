using Xunit;

namespace Pippy.Tests.Generator;

/// <summary>Forward bodies beyond the quickstart's one-call-per-statement chain.</summary>
public class ScenarioTests
{
    private const string Usings = """
        using Pippy;
        using TorchSharp.Modules;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;
        namespace Scenarios;
        """;

    [Fact]
    public void SeveralValuesCrossOneBoundaryAndModelMembersAreReachedThroughTheModel()
    {
        // Stage 0 makes g and h; stage 1 reads both, the model's scale field and a helper method, and the argument x.
        var result = GeneratorHarness.Run(Usings + """
            [Pipeline(Microbatches = 2)]
            public sealed partial class TwoValues : Module<Tensor, Tensor>
            {
                [SplitEnd] private readonly Linear encoder;
                private readonly Linear decoder;
                private readonly double scale = 0.5;
                public TwoValues() : base(nameof(TwoValues)) { encoder = Linear(8, 8); decoder = Linear(8, 8); RegisterComponents(); }
                private Tensor Mix(Tensor a, Tensor b) => a + b;
                public override Tensor forward(Tensor x)
                {
                    var g = x.relu() * scale; // made in stage 0, read in stage 1
                    var h = encoder.forward(x);
                    var y = decoder.forward(Mix(h, g)) + x;
                    if (y.dim() > 1)
                    {
                        y = y * this.scale;
                    }
                    return y;
                }
            }
            """);
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompileErrors());
        Snapshot.Match(result.Render(), "TwoValues");
    }

    [Fact]
    public void ExpressionBodiedSingleStageModelIsOneStageWithAWarning()
    {
        var result = GeneratorHarness.Run(Usings + """
            [Pipeline]
            public sealed partial class OneStage : Module<Tensor, Tensor>
            {
                private readonly Linear linear;
                public OneStage() : base(nameof(OneStage)) { linear = Linear(4, 4); RegisterComponents(); }
                public override Tensor forward(Tensor x) => linear.forward(x).relu();
            }
            """);
        Assert.Equal(new[] { "PIPPY0011" }, result.Ids());
        Assert.Empty(result.CompileErrors());
        Assert.Contains("public const int StageCount = 1;", result.Render());
    }

    [Fact]
    public void StageThatOverwritesAnEarlierVariableDeclaresIt()
    {
        // Stage 2 assigns x (forward's argument) before reading it, so x is no input of stage 2 and must be declared.
        var result = GeneratorHarness.Run(Usings + """
            [Pipeline]
            public sealed partial class Overwrite : Module<Tensor, Tensor>
            {
                [SplitEnd] private readonly Linear a = Linear(4, 4);
                [SplitEnd] private readonly Linear b = Linear(4, 4);
                private readonly Linear c = Linear(4, 4);
                public Overwrite() : base(nameof(Overwrite)) { RegisterComponents(); }
                public override Tensor forward(Tensor x)
                {
                    x = a.forward(x);
                    var y = b.forward(x);
                    x = y * 2;
                    return c.forward(x);
                }
            }
            """);
        Assert.Empty(result.CompileErrors());
        Assert.Contains("global::TorchSharp.torch.Tensor x = default!;", result.Render());
    }

    [Fact]
    public void TiedWeightCanNameAnotherParameter()
    {
        var result = GeneratorHarness.Run(Usings + """
            [Pipeline]
            public sealed partial class TiedBias : Module<Tensor, Tensor>
            {
                [SplitEnd, TiedWeight("offset", "bias")] private readonly Linear first = Linear(4, 4);
                [TiedWeight("offset", "bias")] private readonly Linear last = Linear(4, 4);
                public TiedBias() : base(nameof(TiedBias)) { last.bias = first.bias!; RegisterComponents(); }
                public override Tensor forward(Tensor x) { x = first.forward(x); return last.forward(x); }
            }
            """);
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompileErrors());
        Assert.Contains("new global::Pippy.ReplicatedParameterGroup(\"tied 'offset'\", new global::Pippy.ParameterReplica[] { new global::Pippy.ParameterReplica(0, \"first.bias\", wholeModule: false), new global::Pippy.ParameterReplica(1, \"last.bias\", wholeModule: false) })", result.Render());
    }

    [Fact]
    public void ModelNestedInAPartialClassIsEmittedInsideIt()
    {
        var result = GeneratorHarness.Run(Usings + """
            public static partial class Outer
            {
                [Pipeline(Microbatches = 3)]
                public sealed partial class Inner : Module<Tensor, Tensor>
                {
                    [SplitEnd] private readonly Linear a;
                    private readonly Linear b;
                    public Inner() : base(nameof(Inner)) { a = Linear(4, 4); b = Linear(4, 4); RegisterComponents(); }
                    public override Tensor forward(Tensor x) { x = a.forward(x); return b.forward(x); }
                }
            }
            """);
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompileErrors());
        Assert.Contains("partial class Outer", result.Render());
    }
}
