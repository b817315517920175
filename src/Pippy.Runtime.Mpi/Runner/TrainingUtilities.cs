using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Runtime.Communication;
using Pippy.Runtime.Execution;
using Pippy.Runtime.Native;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Pippy.Runtime.Runner
{
    /// <summary>What a training loop does between Steps, pipeline-wide: global gradient clipping and giving back the memory of other ranks' stages.</summary>
    internal static class TrainingUtilities
    {
        /// <summary>
        /// The 2-norm over every parameter of the whole pipeline (squared norms summed across the pipeline's ranks, a
        /// replicated parameter counted once), then every gradient scaled by min(1, maxNorm / (norm + 1e-6)).
        /// </summary>
        public static double ClipGradNorm(IReadOnlyList<Parameter> parameters, ReplicaSync replicas, MpiCommunicator pipeline, double maxNorm) =>
            ClipGradNorm(parameters, parameters.Select(p => !replicas.IsSecondaryCopy(p)).ToArray(), pipeline, maxNorm);

        /// <summary>The same over <paramref name="parameters"/>, counting in the norm those whose <paramref name="counted"/> is true (one copy of each replicated parameter).</summary>
        public static double ClipGradNorm(IReadOnlyList<Parameter> parameters, IReadOnlyList<bool> counted, MpiCommunicator pipeline, double maxNorm)
        {
            double local = 0;
            using (var scope = NewDisposeScope())
            {
                for (int i = 0; i < parameters.Count; i++)
                    if (parameters[i].grad is { } grad && counted[i]) local += grad.to_type(ScalarType.Float64).square().sum().item<double>();
            }
            // Data-parallel replicas hold the same (summed) gradients, so the norm is one pipeline's.
            double norm = Math.Sqrt(pipeline.Allreduce(local, ReduceOperation.Sum, "the gradient-norm allreduce of ClipGradNorm"));
            double coefficient = Math.Min(1.0, maxNorm / (norm + 1e-6));
            using (no_grad())
            {
                foreach (var p in parameters) p.grad?.mul_(coefficient);
            }
            return norm;
        }

        /// <summary>Disposes every parameter and buffer of <paramref name="model"/> that <paramref name="stages"/> do not hold; returns the bytes released.</summary>
        public static long ReleaseOtherStages(IEnumerable<PipelineStage> stages, nn.Module model)
        {
            var kept = new HashSet<IntPtr>(stages.SelectMany(s => s.parameters().Cast<Tensor>().Concat(s.buffers())).Select(TorchNative.DataPointer));
            var others = model.parameters().Cast<Tensor>().Concat(model.buffers())
                .Where(t => !t.is_meta)
                .Select(t => (Tensor: t, Pointer: TorchNative.DataPointer(t)))
                .Where(x => !kept.Contains(x.Pointer))
                .ToList();
            long bytes = others.GroupBy(x => x.Pointer).Sum(g => g.First().Tensor.NumberOfElements * g.First().Tensor.ElementSize);
            foreach (var (tensor, _) in others.Where(x => !x.Tensor.IsInvalid)) tensor.Dispose();
            // The C heap keeps freed memory for reuse (MallocTuning): this memory is meant to go back to the system.
            MallocTuning.GiveBackFreeMemory();
            return bytes;
        }
    }
}
