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
            if (stages.Count != graph.StageCount) throw new ArgumentException($"{graph.ModelName} has {graph.StageCount} stages, not {stages.Count}.", nameof(stages));
            if (inputs.Length != graph.ModelInputs.Count) throw new ArgumentException($"{graph.ModelName}.forward takes {graph.ModelInputs.Count} input(s).", nameof(inputs));
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
