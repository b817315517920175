using System;
using System.Collections.Generic;
using System.Linq;
using static TorchSharp.torch;

namespace Pippy.Runtime
{
    /// <summary>
    /// Activation recomputation of one block ([Recompute] on a submodule; the generated stages call <see cref="Run"/>):
    /// the block's forward runs without a graph and keeps only its tensor arguments; its backward runs the block again
    /// with the random generator as the first run left it, then takes the gradients of that graph. The block's
    /// parameters are inputs of the autograd node, so their gradients reach them as any other's do (accumulated by a
    /// backward, returned by autograd.grad). A backward split into input and weight parts (zero-bubble's I and W)
    /// recomputes once: the I keeps the recomputed graph and its input gradients, and the W takes the weights' from it.
    /// </summary>
    public static class BlockRecomputation
    {
        /// <summary>Which part of a backward the runtime is running (zero-bubble's I and W); a plain backward is Whole.</summary>
        internal enum BackwardPart { Whole, InputOnly, WeightOnly }

        [ThreadStatic] private static BackwardPart _part;

        /// <summary>Runs <paramref name="action"/> as the given part of a backward.</summary>
        internal static void As(BackwardPart part, Action action)
        {
            var before = _part;
            _part = part;
            try { action(); }
            finally
            {
                _part = before;
                FreeReturned();
            }
        }

        /// <summary>
        /// <paramref name="forward"/> on <paramref name="block"/> and <paramref name="inputs"/>, recomputed in the backward.
        /// Without a graph to build (no_grad, evaluation) it is the plain call.
        /// </summary>
        public static Tensor Run<TModule>(TModule block, Func<TModule, Tensor[], Tensor> forward, params Tensor[] inputs) where TModule : nn.Module
        {
            if (block is null) throw new ArgumentNullException(nameof(block));
            if (!is_grad_enabled()) return forward(block, inputs);
            var parameters = block.parameters().Where(p => p.requires_grad).Cast<Tensor>().ToArray();
            var call = new Call(inputs.Length, parameters, tensors => forward(block, tensors));
            var arguments = new object?[1 + inputs.Length + parameters.Length];
            arguments[0] = call;
            Array.Copy(inputs, 0, arguments, 1, inputs.Length);
            Array.Copy(parameters, 0, arguments, 1 + inputs.Length, parameters.Length);
            return Checkpointed.apply(arguments!);
        }

        /// <summary>One recomputed call: how to run it again, the generator's state before it, and what an I keeps for its W.</summary>
        private sealed class Call
        {
            public Call(int inputCount, Tensor[] parameters, Func<Tensor[], Tensor> run)
            {
                InputCount = inputCount;
                Parameters = parameters;
                Run = run;
            }

            public int InputCount { get; }
            public Tensor[] Parameters { get; }
            public Func<Tensor[], Tensor> Run { get; }
            public byte[]? RandomState { get; set; }

            /// <summary>After an I: the recomputed output (holding its graph), its gradient, and the inputs' gradients.</summary>
            public (Tensor Output, Tensor Gradient, Tensor?[] InputGradients)? Kept { get; set; }
        }

        /// <summary>
        /// Gradients a backward returned to autograd. The engine copies them as the backward returns, so their wrappers
        /// are freed at the next backward (or when the runtime's autograd call ends) rather than when the step's dispose
        /// scope ends, which would keep every block's gradients of every microbatch alive until then.
        /// </summary>
        [ThreadStatic] private static List<Tensor>? _returned;

        private static void FreeReturned()
        {
            if (_returned is not { Count: > 0 } returned) return;
            foreach (var tensor in returned) tensor.Dispose();
            returned.Clear();
        }

        private sealed class Checkpointed : autograd.SingleTensorFunction<Checkpointed>
        {
            public override string Name => "BlockRecomputation";

            public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
            {
                var call = (Call)vars[0];
                var inputs = Inputs(vars, call);
                using (var state = get_rng_state()) call.RandomState = state.data<byte>().ToArray();
                ctx.save_data("call", call);
                ctx.save_for_backward(inputs.ToList()!);
                // The block's own tensors are freed as it returns: only its output outlives the call.
                using var scope = NewDisposeScope();
                var output = call.Run(inputs!);
                if (scope.DisposablesView.Any(d => ReferenceEquals(d, output))) scope.MoveToOuter(output);
                return output;
            }

            public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
            {
                FreeReturned();
                var call = (Call)ctx.get_data("call");
                var result = new Tensor?[1 + call.InputCount + call.Parameters.Length];
                var part = _part;
                using var scope = NewDisposeScope();
                if (part == BackwardPart.WeightOnly && call.Kept is { } kept)
                {
                    // The W after an I: the weights' gradients from the graph the I recomputed, the inputs' again as the I found them.
                    Place(result, 1, kept.InputGradients);
                    Place(result, 1 + call.InputCount, Gradients(kept.Output, kept.Gradient, call.Parameters, keepGraph: false));
                    call.Kept = null;
                    kept.Output.Dispose();
                    kept.Gradient.Dispose();
                    grad_output.Dispose();
                    return Returned(result);
                }

                var (output, inputs) = Recompute(call, ctx.get_saved_variables());
                var needing = inputs.Where(t => t is { requires_grad: true }).Cast<Tensor>().ToArray();
                if (part == BackwardPart.InputOnly)
                {
                    // Kept for the W: the recomputed graph (through its output) and the input gradients, which the W returns again.
                    var inputGradients = Align(inputs, needing, Gradients(output, grad_output, needing, keepGraph: true));
                    foreach (var t in inputGradients) t?.DetachFromDisposeScope();
                    call.Kept = (output.DetachFromDisposeScope(), grad_output, inputGradients);
                    Place(result, 1, inputGradients);
                    return result.ToList()!;
                }
                var all = Gradients(output, grad_output, needing.Concat(call.Parameters).ToArray(), keepGraph: false);
                Place(result, 1, Align(inputs, needing, all.Take(needing.Length).ToArray()));
                Place(result, 1 + call.InputCount, all.Skip(needing.Length).ToArray());
                grad_output.Dispose();
                return Returned(result);
            }

            /// <summary>The gradients out of the backward's scope, to be freed once autograd has taken them.</summary>
            private static List<Tensor> Returned(Tensor?[] result)
            {
                foreach (var tensor in result)
                    if (tensor is not null) (_returned ??= new List<Tensor>()).Add(tensor.DetachFromDisposeScope());
                return result.ToList()!;
            }

            /// <summary>The block run again on detached copies of its inputs, with the generator as the first run found it.</summary>
            private static (Tensor Output, Tensor?[] Inputs) Recompute(Call call, List<Tensor> saved)
            {
                var inputs = saved.Select(t => t is null || t.IsInvalid ? null : t.detach().requires_grad_(t.requires_grad)).ToArray();
                using var current = get_rng_state();
                using (var first = tensor(call.RandomState!, dtype: ScalarType.Byte)) set_rng_state(first);
                try
                {
                    using var grad = enable_grad();
                    return (call.Run(inputs!), inputs);
                }
                finally
                {
                    set_rng_state(current);
                }
            }

            private static Tensor?[] Gradients(Tensor output, Tensor gradient, Tensor[] of, bool keepGraph)
            {
                if (of.Length == 0 || !output.requires_grad) return new Tensor?[of.Length];
                var computed = autograd.grad(new List<Tensor> { output }, of.ToList(), new List<Tensor> { gradient }, retain_graph: keepGraph, allow_unused: true);
                return computed.Select(g => g is null || g.IsInvalid ? null : g).ToArray();
            }

            /// <summary>Each input's gradient by position (found by reference: equal values, a block given one tensor twice, must not match).</summary>
            private static Tensor?[] Align(Tensor?[] inputs, Tensor[] needing, Tensor?[] gradients) =>
                inputs.Select(t => t is null ? null : Array.FindIndex(needing, n => ReferenceEquals(n, t)) is int k and >= 0 ? gradients[k] : null).ToArray();

            private static void Place(Tensor?[] result, int at, Tensor?[] values) => Array.Copy(values, 0, result, at, values.Length);

            private static Tensor?[] Inputs(object[] vars, Call call) =>
                Enumerable.Range(1, call.InputCount).Select(i => vars[i] as Tensor).ToArray();
        }
    }
}
