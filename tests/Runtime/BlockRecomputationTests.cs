using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Pippy.Tests.Runtime;

/// <summary>
/// Recomputed blocks ([Recompute]: BlockRecomputation.Run, what the generated stages call) in one process: outputs and
/// every gradient equal the plain calls', dropout included, in a whole backward and in a backward split into input and
/// weight parts, and each split backward recomputes once.
/// </summary>
public class BlockRecomputationTests
{
    /// <summary>A block of two tensors with dropout, counting its forwards.</summary>
    private sealed class Gate : Module<Tensor, Tensor, Tensor>
    {
        private readonly Linear layer;
        private readonly Dropout dropout;

        public Gate() : base(nameof(Gate))
        {
            layer = Linear(8, 8);
            dropout = Dropout(0.3);
            RegisterComponents();
        }

        public int Forwards { get; private set; }

        public override Tensor forward(Tensor h, Tensor skip)
        {
            Forwards++;
            return dropout.forward(layer.forward(h) + 0.5 * skip).tanh();
        }
    }

    private sealed class Model : Module<Tensor, Tensor>
    {
        public readonly Linear input;
        public readonly ModuleList<Gate> blocks;
        public readonly Linear output;

        public Model() : base(nameof(Model))
        {
            input = Linear(6, 8);
            blocks = new ModuleList<Gate>(new Gate(), new Gate(), new Gate());
            output = Linear(8, 4);
            RegisterComponents();
        }

        public bool Recompute { get; set; }

        public override Tensor forward(Tensor x)
        {
            var h = Recompute ? BlockRecomputation.Run(input, static (m, t) => m.forward(t[0]), x).tanh() : input.forward(x).tanh();
            var skip = h;
            foreach (var block in blocks)
                h = Recompute ? BlockRecomputation.Run(block, static (m, t) => m.forward(t[0], t[1]), h, skip) : block.forward(h, skip);
            return Recompute ? BlockRecomputation.Run(output, static (m, t) => m.forward(t[0]), h) : output.forward(h);
        }
    }

    private static (Tensor Output, Dictionary<string, Tensor> Gradients) Run(bool recompute, Action<Tensor, Tensor, Model> backward, out Model model)
    {
        torch.manual_seed(7);
        model = new Model { Recompute = recompute };
        var x = randn(5, 6).requires_grad_();
        torch.manual_seed(99);
        var output = model.forward(x);
        var loss = output.pow(2).sum();
        backward(loss, x, model);
        return (output.detach(), model.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone()));
    }

    private static void AssertEqual((Tensor Output, Dictionary<string, Tensor> Gradients) expected, (Tensor Output, Dictionary<string, Tensor> Gradients) actual)
    {
        Assert.True(expected.Output.allclose(actual.Output, rtol: 1e-6, atol: 1e-7), "outputs differ");
        Assert.Equal(expected.Gradients.Keys, actual.Gradients.Keys);
        var wrong = expected.Gradients.Where(g => !g.Value.allclose(actual.Gradients[g.Key], rtol: 1e-5, atol: 1e-7))
            .Select(g => $"{g.Key} (max |diff| {(g.Value - actual.Gradients[g.Key]).abs().max().item<float>():G3})").ToArray();
        Assert.True(wrong.Length == 0, "gradients differ: " + string.Join(", ", wrong));
    }

    [Fact]
    public void AWholeBackwardEqualsThePlainCallsWithDropoutAndRecomputesEachBlockOnce()
    {
        var plain = Run(false, (loss, _, _) => loss.backward(), out _);
        var recomputed = Run(true, (loss, _, _) => loss.backward(), out var model);
        AssertEqual(plain, recomputed);
        Assert.All(model.blocks, block => Assert.Equal(2, block.Forwards));
    }

    [Fact]
    public void ABackwardSplitIntoInputAndWeightPartsRecomputesOnceAndEqualsThePlainCalls()
    {
        // As zero-bubble's I (the input's gradient, the graph kept) and W (the weights', from the same graph).
        Tensor? plainInput = null, splitInput = null;
        var plain = Run(false, (loss, x, _) =>
        {
            plainInput = autograd.grad(new[] { loss }, new[] { x }, retain_graph: true)[0].clone();
            loss.backward();
        }, out _);
        var split = Run(true, (loss, x, model) =>
        {
            BlockRecomputation.As(BlockRecomputation.BackwardPart.InputOnly, () => splitInput = autograd.grad(new[] { loss }, new[] { x }, retain_graph: true)[0].clone());
            Assert.All(model.blocks, block => Assert.Equal(2, block.Forwards));
            var weights = model.parameters().Cast<Tensor>().ToList();
            BlockRecomputation.As(BlockRecomputation.BackwardPart.WeightOnly, () => autograd.backward(new[] { loss }, inputs: weights));
        }, out var model);
        AssertEqual(plain, split);
        Assert.True(plainInput!.allclose(splitInput!, rtol: 1e-5, atol: 1e-7), "the input's gradient differs");
        Assert.All(model.blocks, block => Assert.Equal(2, block.Forwards));
    }
}
