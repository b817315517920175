using System;
using System.Collections.Generic;
using TorchSharp;
using static TorchSharp.torch;

namespace Pippy.Runtime
{
    /// <summary>
    /// The base of every generated stage: a TorchSharp module that takes the stage's inputs and returns its
    /// outputs, in the order of its <see cref="StageSpec"/>. Its submodules are the model's own, so parameters are
    /// shared with the model the stage was cut from.
    /// </summary>
    public abstract class PipelineStage : nn.Module<Tensor[], Tensor[]>
    {
        protected PipelineStage(string name, int index) : base(name)
        {
            Index = index;
        }

        /// <summary>The stage's position in the pipeline.</summary>
        public int Index { get; }

        /// <summary>The last stage's outputs: forward's result as a tensor array.</summary>
        protected static Tensor[] Outputs(Tensor output) => new[] { output };

        /// <summary>The last stage's outputs for a forward that returns a tuple.</summary>
        protected static Tensor[] Outputs((Tensor, Tensor) output) => new[] { output.Item1, output.Item2 };

        /// <inheritdoc cref="Outputs((Tensor, Tensor))"/>
        protected static Tensor[] Outputs((Tensor, Tensor, Tensor) output) => new[] { output.Item1, output.Item2, output.Item3 };

        /// <inheritdoc cref="Outputs((Tensor, Tensor))"/>
        protected static Tensor[] Outputs((Tensor, Tensor, Tensor, Tensor) output) => new[] { output.Item1, output.Item2, output.Item3, output.Item4 };

        /// <summary>
        /// The model's forward arguments for the step being run, by position (tensors' positions hold null): the runner
        /// sets them before each step for the plain (non-tensor) arguments that generated stages read with
        /// <see cref="Argument{T}"/>. To run a stage by hand, set them as the model's forward would get them.
        /// </summary>
        public IReadOnlyList<object?>? ForwardArguments { get; set; }

        /// <summary>The plain argument of forward at <paramref name="position"/>, as the step was given it.</summary>
        protected T Argument<T>(int position)
        {
            if (ForwardArguments is not { } arguments || position >= arguments.Count)
                throw new InvalidOperationException(
                    $"{GetName()} reads argument {position} of forward, a {typeof(T).Name}, but was run without forward's plain arguments: " +
                    "give them to the pipeline with the inputs (Step, Forward or Evaluate with an object[] of all of forward's arguments in order), or set ForwardArguments.");
            if (arguments[position] is null && default(T) is null) return default!; // a null string
            return arguments[position] is T value ? value
                : throw new InvalidOperationException($"{GetName()} reads argument {position} of forward as a {typeof(T).Name}, but it holds {arguments[position]?.GetType().Name ?? "null"}.");
        }

        protected void CheckInputCount(Tensor[] inputs, int expected)
        {
            if (inputs is null) throw new ArgumentNullException(nameof(inputs));
            if (inputs.Length != expected)
                throw new ArgumentException($"{GetName()} takes {expected} input tensor(s) but was given {inputs.Length}.", nameof(inputs));
        }
    }
}
