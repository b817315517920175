using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Runtime.Transport;
using Pippy.Schedules;
using static TorchSharp.torch;

namespace Pippy.Runtime.Execution
{
    /// <summary>
    /// Runs one rank's action list for one batch. It holds, per microbatch, the stage's inputs (received tensors
    /// become leaves that collect their gradient), its outputs (kept until their backward), the gradients received
    /// for them (summed when a value went to several stages), and on the last stage the loss.
    /// </summary>
    internal sealed class ScheduleInterpreter
    {
        private readonly PipelineStage _stage;
        private readonly StageSpec _spec;
        private readonly StageGraph _graph;
        private readonly TensorTransport _transport;
        private readonly int _microbatches;
        private readonly bool _isLast;
        private readonly ValueEdge[] _incoming;
        private readonly ValueEdge[] _outgoing;

        private readonly Tensor[][] _modelInputs;
        private readonly Tensor[]? _targets;
        private readonly Func<Tensor, Tensor, Tensor>? _loss;
        private readonly Tensor?[][] _inputs;
        private readonly Tensor[]?[] _outputs;
        private readonly Tensor?[][] _outputGradients;

        public ScheduleInterpreter(
            PipelineStage stage, StageGraph graph, TensorTransport transport, int microbatches,
            Tensor[][] modelInputs, Tensor[]? targets, Func<Tensor, Tensor, Tensor>? loss)
        {
            _stage = stage;
            _graph = graph;
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
            _outputs = new Tensor[]?[microbatches];
            _outputGradients = new Tensor?[microbatches][];
            Losses = new Tensor?[microbatches];
            LastStageOutputs = new Tensor?[microbatches];
        }

        private bool Training => _loss is not null;

        /// <summary>The loss of each microbatch (last stage, training).</summary>
        public Tensor?[] Losses { get; }

        /// <summary>The model output of each microbatch (last stage).</summary>
        public Tensor?[] LastStageOutputs { get; }

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

        private void Execute(PipelineAction action)
        {
            int mb = action.Microbatch;
            switch (action.Kind)
            {
                case ActionKind.ReceiveForward:
                {
                    var values = _transport.Receive(_incoming.Select(e => (RankOf(e.FromStage), TensorTransport.MessageTag(e.Id, backward: false, mb, _microbatches))).ToArray());
                    for (int i = 0; i < _incoming.Length; i++)
                    {
                        var edge = _incoming[i];
                        var value = values[i] ?? throw new InvalidOperationException($"Stage {edge.FromStage} sent no tensor for '{edge.Name}' (microbatch {mb}).");
                        if (Training && value.is_floating_point()) value.requires_grad_(true);
                        InputsOf(mb)[edge.ToInput] = value;
                    }
                    break;
                }

                case ActionKind.Forward:
                    Forward(mb);
                    break;

                case ActionKind.SendForward:
                    foreach (var edge in _outgoing)
                        _transport.Send(OutputsOf(mb, action)[edge.FromOutput], RankOf(edge.ToStage), TensorTransport.MessageTag(edge.Id, backward: false, mb, _microbatches));
                    break;

                case ActionKind.ReceiveBackward:
                {
                    var gradients = _transport.Receive(_outgoing.Select(e => (RankOf(e.ToStage), TensorTransport.MessageTag(e.Id, backward: true, mb, _microbatches))).ToArray());
                    var sums = _outputGradients[mb] ??= new Tensor?[_spec.Outputs.Count];
                    for (int i = 0; i < _outgoing.Length; i++)
                    {
                        if (gradients[i] is not { } gradient) continue;
                        int output = _outgoing[i].FromOutput;
                        sums[output] = sums[output] is { } sum ? sum + gradient : gradient;
                    }
                    break;
                }

                case ActionKind.Backward:
                    Backward(mb, action);
                    break;

                case ActionKind.SendBackward:
                    foreach (var edge in _incoming)
                    {
                        var input = InputsOf(mb)[edge.ToInput];
                        var gradient = input is { requires_grad: true } ? input.grad : null;
                        _transport.Send(gradient, RankOf(edge.FromStage), TensorTransport.MessageTag(edge.Id, backward: true, mb, _microbatches));
                    }
                    _inputs[mb] = null!;
                    break;

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
            LastStageOutputs[mb] = outputs[0];
            if (Training) Losses[mb] = _loss!(outputs[0], _targets![mb]);
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
            _outputGradients[mb] = null!;
        }

        private Tensor?[] InputsOf(int mb) => _inputs[mb] ??= new Tensor?[_spec.Inputs.Count];

        private Tensor[] OutputsOf(int mb, PipelineAction action) =>
            _outputs[mb] ?? throw new InvalidOperationException($"{action}: stage {_stage.Index} has no outputs for microbatch {mb}; was its forward run?");

        /// <summary>Stage k runs on rank k.</summary>
        private static int RankOf(int stage) => stage;
    }
}
