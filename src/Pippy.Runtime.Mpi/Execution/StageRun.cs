using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Schedules;
using static TorchSharp.torch;

namespace Pippy.Runtime.Execution
{
    /// <summary>One stage's state for one batch.</summary>
    internal sealed class StageRun
    {
        private readonly bool[]?[] _needsGradient;
        private readonly bool[]?[] _sentWithGradient;
        private readonly Tensor?[]?[] _outputGradients;
        private readonly (List<Tensor> Roots, List<Tensor>? Gradients)?[] _pendingWeight;

        private readonly List<Tensor>?[] _leases;
        private readonly IDisposable[]?[] _activations;
        private readonly bool[] _forwardSent;
        private readonly Action<Tensor> _returnBuffer;

        public StageRun(PipelineStage stage, StageGraph graph, int microbatches, Func<int, bool> isLocal, Action<Tensor> returnBuffer)
        {
            _returnBuffer = returnBuffer;
            _leases = new List<Tensor>?[microbatches];
            _activations = new IDisposable[]?[microbatches];
            AwaitsRecompute = new bool[microbatches];
            RandomStates = new Tensor?[microbatches];
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

        /// <summary>What a microbatch's forward made (its activations): freed when its backward is done.</summary>
        public void KeepUntilBackward(int mb, IDisposable[] made)
        {
            var kept = _activations[mb];
            _activations[mb] = kept is null ? made : kept.Concat(made).ToArray();
        }

        /// <summary>With recomputation: the microbatch's forward dropped its graph, and its backward runs it again first.</summary>
        public bool[] AwaitsRecompute { get; }

        /// <summary>With recomputation: the random generator's state before each microbatch's forward.</summary>
        public Tensor?[] RandomStates { get; }

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
            // By reference: Tensor.Equals compares values, and two inputs may hold equal values.
            return Incoming.Where((edge, k) => NeedsGradient(mb)[k]).Select(edge => inputs[edge.ToInput]!).Distinct(ReferenceEqualityComparer.Instance).Cast<Tensor>().ToList();
        }

        /// <summary>B: input and weight gradients in one backward.</summary>
        public void Backward(int mb, PipelineAction action)
        {
            var (roots, gradients) = Roots(mb, action);
            if (roots.Count > 0) BlockRecomputation.As(BlockRecomputation.BackwardPart.Whole, () => autograd.backward(roots, gradients));
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
                IList<Tensor> computed = Array.Empty<Tensor>();
                BlockRecomputation.As(BlockRecomputation.BackwardPart.InputOnly, () => computed = autograd.grad(roots, inputs, gradients, retain_graph: true, allow_unused: true));
                var all = InputsOf(mb);
                for (int i = 0; i < all.Length; i++)
                {
                    int k = inputs.FindIndex(input => ReferenceEquals(input, all[i]));
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
            if (roots.Count > 0 && Parameters.Count > 0)
                BlockRecomputation.As(BlockRecomputation.BackwardPart.WeightOnly, () => autograd.backward(roots, gradients, inputs: Parameters));
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
            FreeActivations(mb);
        }

        private void FreeActivations(int mb)
        {
            if (_activations[mb] is { } made)
                foreach (var tensor in made) tensor.Dispose();
            _activations[mb] = null;
            RandomStates[mb]?.Dispose();
            RandomStates[mb] = null;
        }

        /// <summary>
        /// After the step: frees the activations of microbatches whose backward did not run (a failed step, or a
        /// forward-only pass), but not their receive buffers, which a receive may still be posted into.
        /// </summary>
        public void FreeAllActivations()
        {
            for (int mb = 0; mb < _activations.Length; mb++) FreeActivations(mb);
        }
    }
}
