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
    /// </summary>
    internal sealed class ScheduleInterpreter
    {
        /// <summary>Time inside torch (stage forward, loss, autograd) and inside the transport (MPI), for the runtime's own overhead.</summary>
        internal sealed class Meter
        {
            public long ComputeTicks, CommunicationTicks;
            public static double Milliseconds(long ticks) => ticks * 1000.0 / System.Diagnostics.Stopwatch.Frequency;
        }

        public Meter Time { get; } = new();

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
            Tensor[][] modelInputs, Tensor[]? targets, Func<Tensor[], Tensor, Tensor>? loss, double[]? lossWeights = null)
        {
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

        private bool Training => _loss is not null;

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
            _nextToPost = 0;
            if (Timeline.Capacity < actions.Count) Timeline.Capacity = actions.Count;
            for (int i = 0; i < actions.Count; i++)
            {
                var action = actions[i];
                if (!_stages.TryGetValue(action.Stage, out var stage))
                    throw new InvalidOperationException($"Action {action} belongs to stage {action.Stage}, which runs on rank {_rankOfStage[action.Stage]}, not on rank {_rank}.");
                double start = clock.Elapsed.TotalMilliseconds;
                try
                {
                    PostAhead(actions, i);
                    Execute(stage, action, i);
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
            long t = System.Diagnostics.Stopwatch.GetTimestamp();
            _transport.WaitForSends();
            Time.CommunicationTicks += System.Diagnostics.Stopwatch.GetTimestamp() - t;
        }

        private PendingReceive[]?[] _posted = Array.Empty<PendingReceive[]?>();
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
                long t = System.Diagnostics.Stopwatch.GetTimestamp();
                pending[k] = _transport.Post(_rankOfStage[remote[k].FromStage], Tag(remote[k], false, mb), s.Device,
                    $"the value '{remote[k].Name}' from stage {remote[k].FromStage} (pipeline rank {_rankOfStage[remote[k].FromStage]}) for stage {s.Stage.Index}, microbatch {mb}");
                Time.CommunicationTicks += System.Diagnostics.Stopwatch.GetTimestamp() - t;
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
                    long t = System.Diagnostics.Stopwatch.GetTimestamp();
                    pending.Add(_transport.Post(_rankOfStage[s.Outgoing[k].ToStage], Tag(s.Outgoing[k], true, mb), s.Device,
                        $"the gradient of '{s.Outgoing[k].Name}' from stage {s.Outgoing[k].ToStage} (pipeline rank {_rankOfStage[s.Outgoing[k].ToStage]}) for stage {s.Stage.Index}, microbatch {mb}"));
                    Time.CommunicationTicks += System.Diagnostics.Stopwatch.GetTimestamp() - t;
                }
            return pending.ToArray();
        }

        /// <summary>Gives every receive buffer still held back to the transport: after a forward-only pass, once its outputs are merged.</summary>
        public void ReleaseBuffers()
        {
            foreach (var stage in _stages.Values) stage.ReleaseAllBuffers();
        }

        private bool Local(int stage) => _rankOfStage[stage] == _rank;

        private int Tag(ValueEdge edge, bool backward, int mb) => TensorTransport.MessageTag(edge.Id, backward, mb, _microbatches);

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
                    long t = System.Diagnostics.Stopwatch.GetTimestamp();
                    if (action.Kind == ActionKind.Backward) s.Backward(mb, action);
                    else s.BackwardInput(mb, action);
                    Time.ComputeTicks += System.Diagnostics.Stopwatch.GetTimestamp() - t;
                    break;
                }

                case ActionKind.BackwardWeight:
                {
                    long t = System.Diagnostics.Stopwatch.GetTimestamp();
                    s.BackwardWeight(mb, action);
                    Time.ComputeTicks += System.Diagnostics.Stopwatch.GetTimestamp() - t;
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
            long t = System.Diagnostics.Stopwatch.GetTimestamp();
            var received = _transport.Complete(pending);
            Time.CommunicationTicks += System.Diagnostics.Stopwatch.GetTimestamp() - t;
            return received;
        }

        private void Send(Tensor? value, int destination, int tag, ValueEdge edge, string what, int mb)
        {
            long t = System.Diagnostics.Stopwatch.GetTimestamp();
            try
            {
                // Values may be views (a transpose, a slice): they cross as contiguous copies; contiguous ones as they are.
                _transport.Send(value?.contiguous(), destination, tag);
                Time.CommunicationTicks += System.Diagnostics.Stopwatch.GetTimestamp() - t;
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
                if (input.IsModelInput) inputs[i] = _modelInputs[input.Index][mb];
                if (inputs[i] is null)
                    throw new InvalidOperationException($"Stage {s.Stage.Index} input '{input.Name}' of microbatch {mb} was not received before its forward.");
            }
            long t = System.Diagnostics.Stopwatch.GetTimestamp();
            Tensor[] outputs;
            try
            {
                outputs = s.Stage.forward(inputs!);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // Most often a value the stage cannot take (a shape or dtype it does not expect): say what it got and from where.
                throw new StageForwardException(StageInputs.Describe(s.Spec, inputs!, _rankOfStage), e);
            }
            Time.ComputeTicks += System.Diagnostics.Stopwatch.GetTimestamp() - t;
            if (outputs.Length != s.Spec.Outputs.Count)
                throw new InvalidOperationException($"Stage {s.Stage.Index} returned {outputs.Length} values but its plan has {s.Spec.Outputs.Count}.");
            s.Outputs[mb] = outputs;
            if (!s.IsLast) return;
            s.LastOutputs[mb] = outputs;
            if (!Training) return;
            t = System.Diagnostics.Stopwatch.GetTimestamp();
            Tensor loss;
            try
            {
                loss = _loss!(outputs, _targets![mb]);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                throw new LossFailedException(e);
            }
            s.Losses[mb] = _lossWeights is null ? loss : loss * _lossWeights[mb];
            Time.ComputeTicks += System.Diagnostics.Stopwatch.GetTimestamp() - t;
        }

        /// <summary>One stage's state for one batch.</summary>
        internal sealed class StageRun
        {
            private readonly bool[]?[] _needsGradient;
            private readonly bool[]?[] _sentWithGradient;
            private readonly Tensor?[]?[] _outputGradients;
            private readonly (List<Tensor> Roots, List<Tensor>? Gradients)?[] _pendingWeight;

            private readonly List<Tensor>?[] _leases;
            private readonly bool[] _forwardSent;
            private readonly Action<Tensor> _returnBuffer;

            public StageRun(PipelineStage stage, StageGraph graph, int microbatches, Func<int, bool> isLocal, Action<Tensor> returnBuffer)
            {
                _returnBuffer = returnBuffer;
                _leases = new List<Tensor>?[microbatches];
                _forwardSent = new bool[microbatches];
                Stage = stage;
                Spec = graph.Stages[stage.Index];
                IsLast = stage.Index == graph.StageCount - 1;
                Incoming = graph.EdgesTo(stage.Index).ToArray();
                Outgoing = graph.EdgesFrom(stage.Index).ToArray();
                Inputs = new Tensor?[microbatches][];
                InputGradients = new Tensor?[microbatches][];
                Outputs = new Tensor[microbatches][];
                Losses = new Tensor?[microbatches];
                LastOutputs = new Tensor[microbatches][];
                _needsGradient = new bool[microbatches][];
                _sentWithGradient = new bool[microbatches][];
                _outputGradients = new Tensor?[microbatches][];
                _pendingWeight = new (List<Tensor>, List<Tensor>?)?[microbatches];
                Parameters = stage.parameters().Where(p => p.requires_grad).Cast<Tensor>().ToList();
                RemoteIncoming = Incoming.Where(e => !isLocal(e.FromStage)).ToArray();
                Device = Parameters.FirstOrDefault()?.device ?? CPU;
            }

            /// <summary>Incoming values from stages on other ranks: those a ReceiveForward waits for.</summary>
            public ValueEdge[] RemoteIncoming { get; }

            /// <summary>Where the stage's parameters live: received values are put there.</summary>
            public Device Device { get; }

            /// <summary>Keeps a receive buffer until the microbatch's backward is done with it.</summary>
            public void Lease(int mb, Tensor buffer) => (_leases[mb] ??= new List<Tensor>()).Add(buffer);

            public void MarkForwardSent(int mb) => _forwardSent[mb] = true;

            /// <summary>True once the microbatch's outputs were sent: which of them get a gradient back is known.</summary>
            public bool ForwardSent(int mb) => _forwardSent[mb] || !Outgoing.Any();

            public void ReleaseAllBuffers()
            {
                for (int mb = 0; mb < _leases.Length; mb++) ReleaseBuffers(mb);
            }

            private void ReleaseBuffers(int mb)
            {
                if (_leases[mb] is not { } leases) return;
                foreach (var buffer in leases) _returnBuffer(buffer);
                _leases[mb] = null;
            }

            public PipelineStage Stage { get; }
            public StageSpec Spec { get; }
            public bool IsLast { get; }
            public ValueEdge[] Incoming { get; }
            public ValueEdge[] Outgoing { get; }
            public Tensor?[]?[] Inputs { get; }
            public Tensor?[]?[] InputGradients { get; }
            public Tensor[]?[] Outputs { get; }
            public Tensor?[] Losses { get; }
            public Tensor[]?[] LastOutputs { get; }
            private List<Tensor> Parameters { get; }

            public Tensor?[] InputsOf(int mb) => Inputs[mb] ??= new Tensor?[Spec.Inputs.Count];
            public bool[] NeedsGradient(int mb) => _needsGradient[mb] ??= new bool[Incoming.Length];
            public bool[] SentWithGradient(int mb) => _sentWithGradient[mb] ??= new bool[Outgoing.Length];

            public Tensor[] OutputsOf(int mb, PipelineAction action) =>
                Outputs[mb] ?? throw new InvalidOperationException($"{action}: stage {Stage.Index} has no outputs for microbatch {mb}; was its forward run?");

            public void AddOutputGradient(int mb, int output, Tensor gradient)
            {
                var sums = _outputGradients[mb] ??= new Tensor?[Spec.Outputs.Count];
                sums[output] = sums[output] is { } sum ? sum + gradient : gradient;
            }

            /// <summary>What the backward starts from: the loss, or the outputs that got a gradient and those gradients.</summary>
            private (List<Tensor> Roots, List<Tensor>? Gradients) Roots(int mb, PipelineAction action)
            {
                if (IsLast)
                    return (new List<Tensor> { Losses[mb] ?? throw new InvalidOperationException($"{action}: no loss for microbatch {mb}; was its forward run?") }, null);
                var outputs = OutputsOf(mb, action);
                var gradients = _outputGradients[mb] ?? new Tensor?[outputs.Length];
                var chosen = Enumerable.Range(0, outputs.Length).Where(k => gradients[k] is not null && outputs[k].requires_grad).ToArray();
                return (chosen.Select(k => outputs[k]).ToList(), chosen.Select(k => gradients[k]!).ToList());
            }

            private List<Tensor> InputsNeedingGradient(int mb)
            {
                var inputs = InputsOf(mb);
                return Incoming.Where((edge, k) => NeedsGradient(mb)[k]).Select(edge => inputs[edge.ToInput]!).Distinct().ToList();
            }

            /// <summary>B: input and weight gradients in one backward.</summary>
            public void Backward(int mb, PipelineAction action)
            {
                var (roots, gradients) = Roots(mb, action);
                if (roots.Count > 0) autograd.backward(roots, gradients);
                InputGradients[mb] = Unaliased(mb, InputsOf(mb).Select(input => input is { requires_grad: true } ? input.grad : null).ToArray());
                Release(mb);
            }

            /// <summary>I: only the gradients of the stage's inputs; the graph is kept for the W that follows.</summary>
            public void BackwardInput(int mb, PipelineAction action)
            {
                var (roots, gradients) = Roots(mb, action);
                var inputs = InputsNeedingGradient(mb);
                var result = new Tensor?[Spec.Inputs.Count];
                if (roots.Count > 0 && inputs.Count > 0)
                {
                    var computed = autograd.grad(roots, inputs, gradients, retain_graph: true, allow_unused: true);
                    var all = InputsOf(mb);
                    for (int i = 0; i < all.Length; i++)
                    {
                        int k = inputs.IndexOf(all[i]!);
                        if (k >= 0) result[i] = computed[k];
                    }
                }
                InputGradients[mb] = Unaliased(mb, result);
                _pendingWeight[mb] = (roots, gradients);
                Outputs[mb] = null;
            }

            /// <summary>W: the parameters' gradients, from the graph the I kept; accumulated like a backward.</summary>
            public void BackwardWeight(int mb, PipelineAction action)
            {
                var (roots, gradients) = _pendingWeight[mb] ?? throw new InvalidOperationException($"{action}: the input gradient (I) of microbatch {mb} has not run.");
                if (roots.Count > 0 && Parameters.Count > 0) autograd.backward(roots, gradients, inputs: Parameters);
                _pendingWeight[mb] = null;
                Release(mb);
            }

            /// <summary>
            /// Input gradients that do not share memory with this microbatch's receive buffers. Autograd hands a
            /// gradient through identity-like operations unchanged (the gradient of <c>h0</c> in <c>y = f(x) + h0</c> is
            /// y's gradient itself), so an input gradient can be the very buffer a gradient message arrived in. That
            /// buffer goes back to the transport at this stage's release (B, or W), and a later message lands in it:
            /// while a send of the input gradient is still in flight, or before a producer stage on this rank has
            /// read it (a looped zero-bubble schedule runs the consumer's W before the producer's I). Such a gradient is
            /// copied; any other is kept as it is.
            /// </summary>
            private Tensor?[] Unaliased(int mb, Tensor?[] gradients)
            {
                if (_leases[mb] is not { Count: > 0 } leases) return gradients;
                for (int i = 0; i < gradients.Length; i++)
                {
                    if (gradients[i] is not { } gradient || gradient.NumberOfElements == 0) continue;
                    if (!gradient.is_contiguous() || leases.Any(buffer => Overlap(buffer, gradient))) gradients[i] = gradient.contiguous().clone();
                }
                return gradients;
            }

            private static bool Overlap(Tensor buffer, Tensor gradient)
            {
                if (buffer.NumberOfElements == 0 || buffer.device_type != gradient.device_type || buffer.device_index != gradient.device_index) return false;
                long a = (long)Native.TorchNative.DataPointer(buffer), b = (long)Native.TorchNative.DataPointer(gradient);
                return a < b + gradient.NumberOfElements * gradient.ElementSize && b < a + buffer.NumberOfElements * buffer.ElementSize;
            }

            private void Release(int mb)
            {
                Outputs[mb] = null;
                _outputGradients[mb] = null;
                Inputs[mb] = null;
                ReleaseBuffers(mb);
            }
        }
    }

    /// <summary>The user's loss function threw (inside the last stage's forward action).</summary>
    internal sealed class LossFailedException(Exception inner) : Exception(inner.Message, inner);

    /// <summary>A stage's own forward code threw; <see cref="Inputs"/> describes what it was given.</summary>
    internal sealed class StageForwardException(string inputs, Exception inner) : Exception(inner.Message, inner)
    {
        public string Inputs { get; } = inputs;
    }

    /// <summary>An action of the schedule failed: which rank, stage, action and microbatch, and the original exception.</summary>
    public sealed class PipelineActionException : Exception
    {
        internal PipelineActionException(int rank, PipelineAction action, Exception inner, string? part = null, string? inputs = null)
            : base(Compose(rank, action, inner, part, inputs), inner)
        {
            Rank = rank;
            Action = action;
        }

        /// <summary>The rank in its pipeline (the schedule's rank).</summary>
        public int Rank { get; }

        public PipelineAction Action { get; }

        private static string Compose(int rank, PipelineAction action, Exception inner, string? part, string? inputs)
        {
            // LibTorch's errors carry its C++ backtrace after the message; the inner exception keeps it.
            string message = inner.Message;
            int trace = message.IndexOf("\nException raised from ", StringComparison.Ordinal);
            if (trace >= 0) message = message.Substring(0, trace).TrimEnd();
            string what = part ?? $"{Describe(action.Kind)} of microbatch {action.Microbatch}";
            if (inputs is null) return $"Pipeline rank {rank}, stage {action.Stage}, action {action} ({what}) failed: {inner.GetType().Name}: {message}";
            return $"Pipeline rank {rank}, stage {action.Stage}, action {action} ({what}, given {inputs}) failed: {inner.GetType().Name}: {message}" +
                   (message.EndsWith('.') ? "" : ".") + " If an input is not what this stage's code takes, check the batch (shape, dtype, which dimension holds the batch) " +
                   "and that every rank built the same model.";
        }

        private static string Describe(ActionKind kind) => kind switch
        {
            ActionKind.Forward => "the forward",
            ActionKind.Backward => "the backward",
            ActionKind.BackwardInput => "the input gradients",
            ActionKind.BackwardWeight => "the weight gradients",
            ActionKind.SendForward => "sending the values",
            ActionKind.ReceiveForward => "receiving the values",
            ActionKind.SendBackward => "sending the gradients",
            _ => "receiving the gradients",
        };
    }
}
