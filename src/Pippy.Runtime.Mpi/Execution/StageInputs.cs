using System.Collections.Generic;
using System.Linq;
using static TorchSharp.torch;

namespace Pippy.Runtime.Execution
{
    /// <summary>Describes what a stage was given, for errors: each input's name, dtype, shape and where it came from.</summary>
    internal static class StageInputs
    {
        public static string Describe(StageSpec spec, IReadOnlyList<Tensor?> inputs, IReadOnlyList<int> rankOfStage) =>
            string.Join("; ", spec.Inputs.Select((input, i) =>
                $"'{input.Name}' {Signature(i < inputs.Count ? inputs[i] : null)} " +
                (input.FromStage is int stage ? $"from stage {stage} (pipeline rank {rankOfStage[stage]})" : $"(argument {input.Index} of forward, this microbatch)")));

        public static string Signature(Tensor? tensor) => tensor is null ? "(missing)" : $"{Shape(tensor)} on {tensor.device}";

        /// <summary>The dtype and shape, as in <c>float32[8, 64]</c>.</summary>
        public static string Shape(Tensor tensor) => $"{tensor.dtype.ToString().ToLowerInvariant()}[{string.Join(", ", tensor.shape)}]";
    }
}
