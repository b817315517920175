using System.Linq;
using Pippy.Runtime;
using Pippy.Schedules;
using Quickstart;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Pippy.Tests.Generator;

/// <summary>
/// The generated stages of the quickstart model, composed in one process, against the model's own forward: the
/// outputs and every parameter's gradient must be the same, since the stages share the model's submodules.
/// </summary>
public class CompositionTests
{
    private static (MyNetwork Model, Tensor X, Tensor Target) Setup()
    {
        torch.manual_seed(0);
        var model = new MyNetwork(512);
        torch.manual_seed(1);
        return (model, torch.randn(16, 512), torch.randn(16, 256));
    }

    [Fact]
    public void ComposedStagesEqualTheModelForward()
    {
        var (model, x, _) = Setup();
        var stages = MyNetwork.Pipeline.CreateStages(model);
        using var noGrad = torch.no_grad();
        var expected = model.forward(x);
        var actual = LocalPipeline.Forward(MyNetwork.Pipeline.Graph, stages, x);
        Assert.True(actual.allclose(expected, rtol: 0, atol: 0), "composed stages differ from model.forward");
    }

    [Fact]
    public void ComposedStagesGiveTheModelsGradients()
    {
        var (model, x, target) = Setup();
        var stages = MyNetwork.Pipeline.CreateStages(model);
        nn.functional.mse_loss(model.forward(x), target, nn.Reduction.Sum).backward();
        var expected = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        model.zero_grad();

        nn.functional.mse_loss(LocalPipeline.Forward(MyNetwork.Pipeline.Graph, stages, x), target, nn.Reduction.Sum).backward();
        var stageParameters = stages.SelectMany(s => s.named_parameters()).ToArray();
        Assert.Equal(expected.Keys.OrderBy(k => k), stageParameters.Select(p => p.name).OrderBy(k => k));
        foreach (var (name, parameter) in stageParameters)
            Assert.True(parameter.grad!.allclose(expected[name], rtol: 0, atol: 0), $"gradient of {name} differs");
    }

    [Fact]
    public void StagesShareTheModelsParameters()
    {
        var (model, _, _) = Setup();
        var stage = MyNetwork.Pipeline.CreateStage(model, 1);
        var modelWeight = model.named_parameters().Single(p => p.name == "layer1.linear.weight").parameter;
        var stageWeight = stage.named_parameters().Single(p => p.name == "layer1.linear.weight").parameter;
        using (torch.no_grad()) modelWeight.fill_(3);
        Assert.Equal(3f, stageWeight[0, 0].item<float>());
        Assert.Equal(new[] { "layer1.linear.weight", "layer1.linear.bias" }, stage.named_parameters().Select(p => p.name));
    }

    [Fact]
    public void BuildTimeTableEqualsTheRuntimeComputedTable()
    {
        var runtime = ScheduleBuilder.Build(ScheduleKind.GPipe, MyNetwork.Pipeline.Graph.Links(), PipelineAttribute.DefaultMicrobatches);
        Assert.Equal(runtime, MyNetwork.Pipeline.Schedule);
        Assert.Equal(runtime.Format(), MyNetwork.Pipeline.Schedule.Format());
    }

    [Fact]
    public void GraphSendsEachValueToTheNextStage()
    {
        var graph = MyNetwork.Pipeline.Graph;
        Assert.Equal(3, graph.StageCount);
        Assert.Equal(new[] { "x: stage 0 -> stage 1", "x: stage 1 -> stage 2" }, graph.Edges.Select(e => e.ToString()));
        Assert.True(graph.Stages[0].Inputs.Single().IsModelInput);
    }
}
