using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Runtime.Transport;
using Pippy.Schedules;
using static TorchSharp.torch;

namespace Pippy.Runtime.Execution
{
    /// <summary>
    /// Runs one rank's action list for one batch. It holds, per microbatch, the stage's inputs (received tensors that
    /// required a gradient on their sender become leaves that collect one here), its outputs (kept until their
    /// backward), the gradients received for them (summed when a value went to several stages), and on the last stage
    /// the outputs and the loss. A gradient message travels only for a value whose sender's tensor required one, and
    /// both sides know it from the forward message's header, so values without gradients (token ids, masks,
    /// detached tensors) cost no backward message.
    /// </summary>
    internal sealed class ScheduleInterpreter
    {
        private readonly PipelineStage _stage;
        private readonly StageSpec _spec;
        private readonly TensorTransport _transport;
        private readonly int _microbatches;
        private readonly bool _isLast;
        private readonly ValueEdge[] _incoming;
        private readonly ValueEdge[] _outgoing;

        private readonly Tensor[][] _modelInputs;
        private readonly Tensor[]? _targets;
        private readonly Func<Tensor[], Tensor, Tensor>? _loss;
        private readonly Tensor?[]?[] _inputs;
        private readonly bool[]?[] _inputNeedsGradient;
        private readonly Tensor[]?[] _outputs;
        private readonly bool[]?[] _outputSentWithGradient;
        private readonly Tensor?[]?[] _outputGradients;

        public ScheduleInterpreter(
            PipelineStage stage, StageGraph graph, TensorTransport transport, int microbatches,
            Tensor[][] modelInputs, Tensor[]? targets, Func<Tensor[], Tensor, Tensor>? loss)
        {
            _stage = stage;
            _spec = graph.Stages[stage.Index];
            _transport = transport;
            _microbatches = microbatches;
            _isLast = stage.Index == graph.StageCount - 1;
            _incoming = graph.EdgesTo(stage.Index).ToArray();
            _outgoing = graph.EdgesFrom(stage.Index).ToArray();
            _modelInputs = modelInputs;
            _targets = targets;
            _loss = loss;
            _inputs = new Tensor?[microbatches][];
            _inputNeedsGradient = new bool[microbatches][];
            _outputs = new Tensor[microbatches][];
            _outputSentWithGradient = new bool[microbatches][];
            _outputGradients = new Tensor?[microbatches][];
            Losses = new Tensor?[microbatches];
            LastStageOutputs = new Tensor[microbatches][];
        }

        private bool Training => _loss is not null;

        /// <summary>The loss of each microbatch (last stage, training).</summary>
        public Tensor?[] Losses { get; }

        /// <summary>Activation messages this rank sent (one per value per consumer per microbatch).</summary>
        public int ActivationsSent { get; private set; }

        /// <summary>Gradient messages this rank sent back (only for values whose sender's tensor required a gradient).</summary>
        public int GradientsSent { get; private set; }

        /// <summary>The model outputs of each microbatch (last stage).</summary>
        public Tensor[]?[] LastStageOutputs { get; }

        public void Run(IReadOnlyList<PipelineAction> actions)
        {
            foreach (var action in actions)
            {
                if (action.Stage != _stage.Index)
                    throw new InvalidOperationException($"Action {action} belongs to stage {action.Stage}, but this rank runs stage {_stage.Index}.");
                Execute(action);
            }
            _transport.WaitForSends();
        }

        private int Tag(ValueEdge edge, bool backward, int mb) => TensorTransport.MessageTag(edge.Id, backward, mb, _microbatches);

        private void Execute(PipelineAction action)
        {
            int mb = action.Microbatch;
            switch (action.Kind)
            {
                case ActionKind.ReceiveForward:
                {
                    var values = _transport.Receive(_incoming.Select(e => (RankOf(e.FromStage), Tag(e, false, mb))).ToArray());
                    var inputs = InputsOf(mb);
                    var needsGradient = _inputNeedsGradient[mb] = new bool[_incoming.Length];
                    for (int i = 0; i < _incoming.Length; i++)
                    {
                        var edge = _incoming[i];
                        var value = values[i].Value ?? throw new InvalidOperationException($"Stage {edge.FromStage} sent no tensor for '{edge.Name}' (microbatch {mb}).");
                        needsGradient[i] = Training && values[i].RequiresGrad && value.is_floating_point();
                        if (needsGradient[i]) value.requires_grad_(true);
                        inputs[edge.ToInput] = value;
                    }
                    break;
                }

                case ActionKind.Forward:
                    Forward(mb);
                    break;

                case ActionKind.SendForward:
                {
                    var outputs = OutputsOf(mb, action);
                    var withGradient = _outputSentWithGradient[mb] = new bool[_outgoing.Length];
                    for (int i = 0; i < _outgoing.Length; i++)
                    {
                        var edge = _outgoing[i];
                        var value = outputs[edge.FromOutput];
                        withGradient[i] = Training && value.requires_grad;
                        _transport.Send(value, RankOf(edge.ToStage), Tag(edge, false, mb));
                        ActivationsSent++;
                    }
                    break;
                }

                case ActionKind.ReceiveBackward:
                {
                    var sent = _outputSentWithGradient[mb] ?? throw new InvalidOperationException($"{action}: nothing was sent forward for microbatch {mb}.");
                    var expected = Enumerable.Range(0, _outgoing.Length).Where(i => sent[i]).ToArray();
                    var gradients = _transport.Receive(expected.Select(i => (RankOf(_outgoing[i].ToStage), Tag(_outgoing[i], true, mb))).ToArray());
                    var sums = _outputGradients[mb] ??= new Tensor?[_spec.Outputs.Count];
                    for (int k = 0; k < expected.Length; k++)
                    {
                        if (gradients[k].Value is not { } gradient) continue;
                        int output = _outgoing[expected[k]].FromOutput;
                        sums[output] = sums[output] is { } sum ? sum + gradient : gradient;
                    }
                    break;
                }

                case ActionKind.Backward:
                    Backward(mb, action);
                    break;

                case ActionKind.SendBackward:
                {
                    var inputs = InputsOf(mb);
                    var needsGradient = _inputNeedsGradient[mb] ?? new bool[_incoming.Length];
                    for (int i = 0; i < _incoming.Length; i++)
                    {
                        if (!needsGradient[i]) continue;
                        var edge = _incoming[i];
                        _transport.Send(inputs[edge.ToInput]!.grad, RankOf(edge.FromStage), Tag(edge, true, mb));
                        GradientsSent++;
                    }
                    _inputs[mb] = null;
                    _inputNeedsGradient[mb] = null;
                    break;
                }

                default:
                    throw new NotSupportedException($"Action {action}: the runtime does not run {action.Kind} actions.");
            }
        }

        private void Forward(int mb)
        {
            var inputs = InputsOf(mb);
            for (int i = 0; i < _spec.Inputs.Count; i++)
            {
                var input = _spec.Inputs[i];
                if (input.IsModelInput) inputs[i] = _modelInputs[input.Index][mb];
                if (inputs[i] is null)
                    throw new InvalidOperationException($"Stage {_stage.Index} input '{input.Name}' of microbatch {mb} was not received before its forward.");
            }
            var outputs = _stage.forward(inputs!);
            if (outputs.Length != _spec.Outputs.Count)
                throw new InvalidOperationException($"Stage {_stage.Index} returned {outputs.Length} values but its plan has {_spec.Outputs.Count}.");
            _outputs[mb] = outputs;
            if (!_isLast) return;
            LastStageOutputs[mb] = outputs;
            if (Training) Losses[mb] = _loss!(outputs, _targets![mb]);
        }

        private void Backward(int mb, PipelineAction action)
        {
            if (_isLast)
            {
                var loss = Losses[mb] ?? throw new InvalidOperationException($"{action}: no loss for microbatch {mb}; was its forward run?");
                loss.backward();
            }
            else
            {
                var outputs = OutputsOf(mb, action);
                var gradients = _outputGradients[mb] ?? new Tensor?[outputs.Length];
                var pairs = Enumerable.Range(0, outputs.Length).Where(k => gradients[k] is not null && outputs[k].requires_grad).ToArray();
                if (pairs.Length > 0)
                    autograd.backward(pairs.Select(k => outputs[k]).ToList(), pairs.Select(k => gradients[k]!).ToList());
            }
            _outputs[mb] = null;
            _outputGradients[mb] = null;
        }

        private Tensor?[] InputsOf(int mb) => _inputs[mb] ??= new Tensor?[_spec.Inputs.Count];

        private Tensor[] OutputsOf(int mb, PipelineAction action) =>
            _outputs[mb] ?? throw new InvalidOperationException($"{action}: stage {_stage.Index} has no outputs for microbatch {mb}; was its forward run?");

        /// <summary>Stage k runs on rank k.</summary>
        private static int RankOf(int stage) => stage;
    }
}
