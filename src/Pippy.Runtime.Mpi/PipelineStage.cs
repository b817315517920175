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

        protected void CheckInputCount(Tensor[] inputs, int expected)
        {
            if (inputs is null) throw new ArgumentNullException(nameof(inputs));
            if (inputs.Length != expected)
                throw new ArgumentException($"{GetName()} takes {expected} input tensor(s) but was given {inputs.Length}.", nameof(inputs));
        }
    }
}
