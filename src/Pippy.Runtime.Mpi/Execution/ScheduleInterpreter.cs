using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Runtime.Transport;
using Pippy.Schedules;
using static TorchSharp.torch;

namespace Pippy.Runtime.Execution
{
    /// <summary>
    /// Runs one rank's action list for one batch, over the one or more stages this rank holds. Per stage and
    /// microbatch it keeps the inputs (values whose sender required a gradient become leaves that collect one), the
    /// outputs (until their backward), the gradients coming back for them (summed when a value went to several
    /// stages), the input gradients it computed, and on the last stage the outputs and the loss. Values between two
    /// stages of this rank are handed over in memory, detached like a message, so each stage's backward stays its own
    /// action. The forward header carries the requires-grad flag, so both ends know which values get a gradient
    /// message back: token ids, masks and detached tensors get none. A backward is either one B, or an I (input
    /// gradients only, keeping the graph) followed later by a W (weight gradients from the same graph).
    /// <para>
    /// Longer than most files because it is the dispatch of every action kind over one step's state; each stage's own
    /// state is <see cref="StageRun"/>, the timing <see cref="ActionMeter"/>, the errors ActionExceptions.cs.
    /// </para>
    /// </summary>
    internal sealed partial class ScheduleInterpreter
    {
        /// <summary>Time inside torch and inside the transport, for the runtime's own overhead.</summary>
        public ActionMeter Time { get; } = new();

        private readonly Dictionary<int, StageRun> _stages;
        private readonly IReadOnlyList<int> _rankOfStage;
        private readonly int _rank;
        private readonly TensorTransport _transport;
        private readonly int _microbatches;
        private readonly Tensor[][] _modelInputs;
        private readonly Tensor[]? _targets;
        private readonly Func<Tensor[], Tensor, Tensor>? _loss;
        private readonly double[]? _lossWeights;

        /// <param name="lossWeights">Per microbatch, what its loss is multiplied by (null: 1), so that the summed losses are the batch's.</param>
        public ScheduleInterpreter(
            IEnumerable<PipelineStage> stages, StageGraph graph, IReadOnlyList<int> rankOfStage, int rank, TensorTransport transport, int microbatches,
            Tensor[][] modelInputs, Tensor[]? targets, Func<Tensor[], Tensor, Tensor>? loss, double[]? lossWeights = null, bool recompute = false, bool evaluating = false, IReadOnlyCollection<int>? recomputeStages = null)
        {
            _evaluating = evaluating;
            bool all = recompute || System.Environment.GetEnvironmentVariable("PIPPY_RECOMPUTE") == "1";
            _recompute = stage => all || (recomputeStages?.Contains(stage) ?? false);
            _lossWeights = lossWeights;
            _rankOfStage = rankOfStage;
            _rank = rank;
            _transport = transport;
            _microbatches = microbatches;
            _modelInputs = modelInputs;
            _targets = targets;
            _loss = loss;
            _stages = stages.ToDictionary(s => s.Index, s => new StageRun(s, graph, microbatches, stage => rankOfStage[stage] == rank, transport.Return));
            LastStage = _stages.Values.FirstOrDefault(s => s.IsLast);
        }

        private bool Training => _loss is not null && !_evaluating;

        /// <summary>Evaluation: a forward-only run that computes the loss on the last stage (no gradients).</summary>
        private readonly bool _evaluating;

        /// <summary>Whether a stage recomputes its activations (PipelineOptions.Recompute or RecomputeStages, or PIPPY_RECOMPUTE=1).</summary>
        private readonly Func<int, bool> _recompute;

        /// <summary>The last stage's state, when this rank holds it.</summary>
        public StageRun? LastStage { get; }

        /// <summary>Activation messages this rank sent to other ranks (one per value per consumer per microbatch).</summary>
        public int ActivationsSent { get; private set; }

        /// <summary>Gradient messages this rank sent back (only for values whose sender's tensor required a gradient).</summary>
        public int GradientsSent { get; private set; }

        /// <summary>When each action of the last <see cref="Run"/> started and ended, in milliseconds from its start.</summary>
        public List<TimedAction> Timeline { get; } = new();

        /// <summary>When the last <see cref="Run"/> started (Stopwatch ticks: the machine's monotonic clock, shared by its processes).</summary>
        public long StartTimestamp { get; private set; }

        /// <summary>How many actions ahead receives are posted: enough to cover the compute between two receives.</summary>
        internal const int Lookahead = 6;

        public void Run(IReadOnlyList<PipelineAction> actions)
        {
            StartTimestamp = System.Diagnostics.Stopwatch.GetTimestamp();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            _posted = new PendingReceive[]?[actions.Count];
            _done = new bool[actions.Count];
            _nextToPost = 0;
            _inFlightBound = Dynamic ? InFlightBound(actions) : null;
            _inFlight.Clear();
            if (Timeline.Capacity < actions.Count) Timeline.Capacity = actions.Count;
            for (int i = 0; i < actions.Count; i++)
            {
                var action = actions[i];
                if (!_stages.TryGetValue(action.Stage, out var stage))
                    throw new InvalidOperationException($"Action {action} belongs to stage {action.Stage}, which runs on rank {_rankOfStage[action.Stage]}, not on rank {_rank}.");
                PostAhead(actions, i);
                if (_done[i]) continue; // run earlier, while an action before it waited
                if (Dynamic && action.Kind == ActionKind.ReceiveBackward) RunReadyForwardsWhileWaiting(actions, i, clock);
                double start = clock.Elapsed.TotalMilliseconds;
                try
                {
                    RunAction(stage, action, i);
                }
                catch (LossFailedException e)
                {
                    throw new PipelineActionException(_rank, action, e.InnerException!, $"the loss of microbatch {action.Microbatch}");
                }
                catch (StageForwardException e)
                {
                    throw new PipelineActionException(_rank, action, e.InnerException!, inputs: e.Inputs);
                }
                catch (Exception e) when (e is not PipelineActionException and not OperationCanceledException)
                {
                    throw new PipelineActionException(_rank, action, e);
                }
                Timeline.Add(new TimedAction(_rank, action, start, clock.Elapsed.TotalMilliseconds));
            }
            long t = ActionMeter.Now;
            _transport.WaitForSends();
            Time.AddCommunication(t);
        }

        private PendingReceive[]?[] _posted = Array.Empty<PendingReceive[]?>();
        private bool[] _done = Array.Empty<bool>();
        private int _nextToPost;

        /// <summary>
        /// Posts the receives of the actions up to <see cref="Lookahead"/> ahead, so a message lands in its buffer
        /// while this rank computes. A gradient receive waits to be posted until its forward was sent, since only
        /// then is it known which values get a gradient.
        /// </summary>
        private void PostAhead(IReadOnlyList<PipelineAction> actions, int current)
        {
            int last = Math.Min(actions.Count - 1, current + Lookahead);
            for (; _nextToPost <= last; _nextToPost++)
            {
                var action = actions[_nextToPost];
                if (_done[_nextToPost] || _posted[_nextToPost] is not null) continue; // run or posted already, out of order
                if (action.Kind == ActionKind.ReceiveForward) _posted[_nextToPost] = PostForward(_stages[action.Stage], action.Microbatch);
                else if (action.Kind == ActionKind.ReceiveBackward)
                {
                    var stage = _stages[action.Stage];
                    if (!stage.ForwardSent(action.Microbatch)) return;
                    _posted[_nextToPost] = PostBackward(stage, action.Microbatch);
                }
            }
        }

        private PendingReceive[] PostForward(StageRun s, int mb)
        {
            var remote = s.RemoteIncoming;
            var pending = new PendingReceive[remote.Length];
            for (int k = 0; k < remote.Length; k++)
            {
                long t = ActionMeter.Now;
                pending[k] = _transport.Post(_rankOfStage[remote[k].FromStage], Tag(remote[k], false, mb), s.Device,
                    $"the value '{remote[k].Name}' from stage {remote[k].FromStage} (pipeline rank {_rankOfStage[remote[k].FromStage]}) for stage {s.Stage.Index}, microbatch {mb}");
                Time.AddCommunication(t);
            }
            return pending;
        }

        private PendingReceive[] PostBackward(StageRun s, int mb)
        {
            var sent = s.SentWithGradient(mb);
            var pending = new List<PendingReceive>();
            for (int k = 0; k < s.Outgoing.Length; k++)
                if (sent[k] && !Local(s.Outgoing[k].ToStage))
                {
                    long t = ActionMeter.Now;
                    pending.Add(_transport.Post(_rankOfStage[s.Outgoing[k].ToStage], Tag(s.Outgoing[k], true, mb), s.Device,
                        $"the gradient of '{s.Outgoing[k].Name}' from stage {s.Outgoing[k].ToStage} (pipeline rank {_rankOfStage[s.Outgoing[k].ToStage]}) for stage {s.Stage.Index}, microbatch {mb}"));
                    Time.AddCommunication(t);
                }
            return pending.ToArray();
        }

        /// <summary>Gives every receive buffer still held back to the transport: after a forward-only pass, once its outputs are merged.</summary>
        public void ReleaseBuffers()
        {
            foreach (var stage in _stages.Values) stage.ReleaseAllBuffers();
        }

        /// <summary>Frees the activations still held (those of a step that failed before their backward).</summary>
        public void FreeActivations()
        {
            foreach (var stage in _stages.Values) stage.FreeAllActivations();
        }

        private bool Local(int stage) => _rankOfStage[stage] == _rank;

        private int Tag(ValueEdge edge, bool backward, int mb) => Communication.MpiCommunicator.MessageTag(edge.Id, backward, mb, _microbatches);

        private void Execute(StageRun s, PipelineAction action, int index)
        {
            int mb = action.Microbatch;
            switch (action.Kind)
            {
                case ActionKind.ReceiveForward:
                {
                    var remote = s.RemoteIncoming;
                    var values = Complete(_posted[index] ?? PostForward(s, mb));
                    _posted[index] = null;
                    for (int k = 0; k < remote.Length; k++)
                    {
                        var edge = remote[k];
                        var buffer = values[k].Value ?? throw new InvalidOperationException($"Stage {edge.FromStage} sent no tensor for '{edge.Name}' (microbatch {mb}).");
                        s.Lease(mb, buffer);
                        // A fresh alias of the reused buffer: a leaf of its own, without the last use's gradient.
                        Accept(s, edge, mb, buffer.detach(), values[k].RequiresGrad);
                    }
                    break;
                }

                case ActionKind.Forward:
                    foreach (var edge in s.Incoming.Where(e => Local(e.FromStage)))
                    {
                        var producer = _stages[edge.FromStage];
                        var value = producer.OutputsOf(mb, action)[edge.FromOutput];
                        bool withGradient = Accept(s, edge, mb, value.detach(), value.requires_grad);
                        producer.SentWithGradient(mb)[Array.IndexOf(producer.Outgoing, edge)] = withGradient;
                    }
                    Forward(s, mb);
                    break;

                case ActionKind.SendForward:
                {
                    var outputs = s.OutputsOf(mb, action);
                    var withGradient = s.SentWithGradient(mb);
                    for (int k = 0; k < s.Outgoing.Length; k++)
                    {
                        var edge = s.Outgoing[k];
                        if (Local(edge.ToStage)) continue;
                        var value = outputs[edge.FromOutput];
                        withGradient[k] = Training && value.requires_grad;
                        Send(value, _rankOfStage[edge.ToStage], Tag(edge, false, mb), edge, "value", mb);
                        ActivationsSent++;
                    }
                    s.MarkForwardSent(mb);
                    break;
                }

                case ActionKind.ReceiveBackward:
                {
                    var sent = s.SentWithGradient(mb);
                    var gradients = Complete(_posted[index] ?? PostBackward(s, mb));
                    _posted[index] = null;
                    int next = 0;
                    for (int k = 0; k < s.Outgoing.Length; k++)
                    {
                        if (!sent[k] || Local(s.Outgoing[k].ToStage)) continue;
                        if (gradients[next++].Value is not { } gradient) continue;
                        s.Lease(mb, gradient);
                        s.AddOutputGradient(mb, s.Outgoing[k].FromOutput, gradient.detach());
                    }
                    break;
                }

                case ActionKind.Backward:
                case ActionKind.BackwardInput:
                    CollectLocalGradients(s, mb);
                {
                    Recompute(s, mb);
                    long t = ActionMeter.Now;
                    if (action.Kind == ActionKind.Backward) s.Backward(mb, action);
                    else s.BackwardInput(mb, action);
                    Time.AddCompute(t);
                    break;
                }

                case ActionKind.BackwardWeight:
                {
                    long t = ActionMeter.Now;
                    s.BackwardWeight(mb, action);
                    Time.AddCompute(t);
                    break;
                }

                case ActionKind.SendBackward:
                {
                    var gradients = s.InputGradients[mb] ?? new Tensor?[s.Spec.Inputs.Count];
                    var needsGradient = s.NeedsGradient(mb);
                    for (int k = 0; k < s.Incoming.Length; k++)
                    {
                        var edge = s.Incoming[k];
                        if (!needsGradient[k] || Local(edge.FromStage)) continue;
                        Send(gradients[edge.ToInput], _rankOfStage[edge.FromStage], Tag(edge, true, mb), edge, "gradient of", mb);
                        GradientsSent++;
                    }
                    break;
                }

                default:
                    throw new NotSupportedException($"Action {action}: the runtime does not run {action.Kind} actions.");
            }
        }

        private ReceivedTensor[] Complete(PendingReceive[] pending)
        {
            long t = ActionMeter.Now;
            var received = _transport.Complete(pending);
            Time.AddCommunication(t);
            return received;
        }

        private void Send(Tensor? value, int destination, int tag, ValueEdge edge, string what, int mb)
        {
            long t = ActionMeter.Now;
            try
            {
                // Values may be views (a transpose, a slice): they cross as contiguous copies; contiguous ones as they are.
                _transport.Send(value?.contiguous(), destination, tag);
                Time.AddCommunication(t);
            }
            catch (SignatureChangedException e)
            {
                throw new InvalidOperationException(
                    $"The {what} '{edge.Name}' from stage {edge.FromStage} to stage {edge.ToStage} (microbatch {mb}) changed between steps although the " +
                    $"batch's shapes did not: {e.Message}. Receives are posted in advance into buffers of the learned shape; for values whose shape " +
                    "depends on the data, set PipelineOptions.LearnShapes = false.", e);
            }
        }

        /// <summary>Stores a received or handed-over input; returns whether a gradient will be sent back for it.</summary>
        private bool Accept(StageRun s, ValueEdge edge, int mb, Tensor value, bool senderRequiresGrad)
        {
            bool needsGradient = Training && senderRequiresGrad && value.is_floating_point();
            if (needsGradient) value.requires_grad_(true);
            s.InputsOf(mb)[edge.ToInput] = value;
            s.NeedsGradient(mb)[Array.IndexOf(s.Incoming, edge)] = needsGradient;
            return needsGradient;
        }

        /// <summary>Gradients for outputs read by stages of this rank: their backward ran before this one (the schedule says so).</summary>
        private void CollectLocalGradients(StageRun s, int mb)
        {
            var sent = s.SentWithGradient(mb);
            for (int k = 0; k < s.Outgoing.Length; k++)
            {
                var edge = s.Outgoing[k];
                if (!Local(edge.ToStage) || !sent[k]) continue;
                var consumer = _stages[edge.ToStage];
                if (consumer.InputGradients[mb]?[edge.ToInput] is { } gradient) s.AddOutputGradient(mb, edge.FromOutput, gradient);
            }
        }

        private void Forward(StageRun s, int mb)
        {
            var inputs = s.InputsOf(mb);
            for (int i = 0; i < s.Spec.Inputs.Count; i++)
            {
                var input = s.Spec.Inputs[i];
                // A model input may be null (an optional tensor the caller did not give); a received value may not.
                if (input.IsModelInput) inputs[i] = _modelInputs[input.Index][mb];
                else if (inputs[i] is null)
                    throw new InvalidOperationException($"Stage {s.Stage.Index} input '{input.Name}' of microbatch {mb} was not received before its forward.");
            }
            if (!Training)
            {
                s.Outputs[mb] = Compute(s, mb, inputs!, out var value);
                if (s.IsLast)
                {
                    s.LastOutputs[mb] = s.Outputs[mb]!;
                    s.Losses[mb] = value;
                }
                return;
            }
            bool recompute = _recompute(s.Stage.Index);
            if (recompute) s.RandomStates[mb] = get_rng_state().DetachFromDisposeScope();
            // The microbatch's own scope: every tensor its forward makes (the activations its backward needs) is
            // freed when that backward is done (StageRun.Release), not at the end of the step, so that a schedule
            // that backwards early (1F1B) holds fewer microbatches' activations at once.
            using var scope = NewDisposeScope();
            var outputs = Compute(s, mb, inputs!, out var loss);
            if (recompute)
            {
                // Only the inputs are kept: the outputs go on without their graph (requiring a gradient as before,
                // so that their consumers send one back), and the backward runs the forward again (Recompute).
                outputs = outputs.Select(o => o.requires_grad ? o.detach().requires_grad_(true) : o.detach()).ToArray();
                loss = loss?.detach();
                s.AwaitsRecompute[mb] = true;
            }
            s.Outputs[mb] = outputs;
            if (s.IsLast)
            {
                // What outlives the backward (the last stage's outputs and loss, which the step returns) moves to the step's scope.
                foreach (var output in outputs) output.MoveToOuterDisposeScope();
                s.LastOutputs[mb] = outputs;
                s.Losses[mb] = loss!.MoveToOuterDisposeScope();
            }
            // Recomputing, only the outputs stay; everything else the forward made is freed now, at the scope's end.
            var made = scope.DisposablesView.ToArray();
            var kept = recompute ? made.Where(d => outputs.Any(o => ReferenceEquals(o, d))).ToArray() : made;
            scope.Detach(kept);
            s.KeepUntilBackward(mb, kept);
        }

        /// <summary>
        /// Recomputation: runs the microbatch's forward again, with the random generator as it was the first time,
        /// so that the backward has the graph the first forward dropped. Once per microbatch (the I of a split
        /// backward recomputes; its W uses the same graph).
        /// </summary>
        private void Recompute(StageRun s, int mb)
        {
            if (!s.AwaitsRecompute[mb]) return;
            s.AwaitsRecompute[mb] = false;
            using var current = get_rng_state();
            set_rng_state(s.RandomStates[mb]!);
            try
            {
                using var scope = NewDisposeScope();
                s.Outputs[mb] = Compute(s, mb, s.InputsOf(mb)!, out var loss);
                if (s.IsLast) s.Losses[mb] = loss!.MoveToOuterDisposeScope();
                s.KeepUntilBackward(mb, scope.DisposablesView.ToArray());
                scope.Detach(scope.DisposablesView.ToArray());
            }
            finally
            {
                set_rng_state(current);
            }
        }

        /// <summary>The stage's forward (and the loss, weighted, on the last stage when training).</summary>
        private Tensor[] Compute(StageRun s, int mb, Tensor[] inputs, out Tensor? loss)
        {
            loss = null;
            long t = ActionMeter.Now;
            Tensor[] outputs;
            try
            {
                outputs = s.Stage.forward(inputs);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // Most often a value the stage cannot take (a shape or dtype it does not expect): say what it got and from where.
                throw new StageForwardException(StageInputs.Describe(s.Spec, inputs, _rankOfStage), e);
            }
            Time.AddCompute(t);
            if (outputs.Length != s.Spec.Outputs.Count)
                throw new InvalidOperationException($"Stage {s.Stage.Index} returned {outputs.Length} values but its plan has {s.Spec.Outputs.Count}.");
            if (!s.IsLast || _loss is null) return outputs;
            t = ActionMeter.Now;
            try
            {
                loss = _loss!(outputs, _targets![mb]);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                throw new LossFailedException(e);
            }
            if (_lossWeights is not null) loss = loss * _lossWeights[mb];
            Time.AddCompute(t);
            return outputs;
        }
    }
}
