using System;
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

        protected void CheckInputCount(Tensor[] inputs, int expected)
        {
            if (inputs is null) throw new ArgumentNullException(nameof(inputs));
            if (inputs.Length != expected)
                throw new ArgumentException($"{GetName()} takes {expected} input tensor(s) but was given {inputs.Length}.", nameof(inputs));
        }
    }
}
