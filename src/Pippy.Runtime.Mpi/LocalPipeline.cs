using System;
using System.Collections.Generic;
using static TorchSharp.torch;

namespace Pippy.Runtime
{
    /// <summary>
    /// Runs all stages of a pipeline in one process, in order, handing values over in memory as the stage graph
    /// says. Autograd flows through it like through the model itself: this is how a plan is checked against
    /// the model's own forward without MPI.
    /// </summary>
    public static class LocalPipeline
    {
        public static Tensor Forward(StageGraph graph, IReadOnlyList<PipelineStage> stages, params Tensor[] inputs)
        {
            if (inputs.Length != graph.ModelInputs.Count) throw new ArgumentException($"{graph.ModelName}.forward takes {graph.ModelInputs.Count} input(s).", nameof(inputs));
            return Run(graph, stages, Execution.ForwardArguments.OfTensors(graph, inputs));
        }

        /// <summary>For a forward that also takes plain arguments (a flag, a number, an enum): all of forward's arguments in its order.</summary>
        public static Tensor Forward(StageGraph graph, IReadOnlyList<PipelineStage> stages, params object?[] arguments) =>
            Run(graph, stages, Execution.ForwardArguments.Of(graph, arguments));

        private static Tensor Run(StageGraph graph, IReadOnlyList<PipelineStage> stages, Execution.ForwardArguments arguments)
        {
            if (stages.Count != graph.StageCount) throw new ArgumentException($"{graph.ModelName} has {graph.StageCount} stages, not {stages.Count}.", nameof(stages));
            var inputs = arguments.Tensors;
            foreach (var stage in stages) stage.ForwardArguments = arguments.Values;
            var outputs = new Tensor[graph.StageCount][];
            for (int s = 0; s < graph.StageCount; s++)
            {
                var spec = graph.Stages[s];
                var stageInputs = new Tensor[spec.Inputs.Count];
                for (int i = 0; i < stageInputs.Length; i++)
                {
                    var input = spec.Inputs[i];
                    stageInputs[i] = input.FromStage is int from ? outputs[from][input.Index] : inputs[input.Index];
                }
                outputs[s] = stages[s].forward(stageInputs);
            }
            return outputs[graph.StageCount - 1][0];
        }
    }
}
