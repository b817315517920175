using System;
using System.Collections.Generic;
using TorchSharp;
using static TorchSharp.torch;

namespace Pippy.Runtime.Materialization
{
    /// <summary>
    /// Builds a model without memory for its weights, so that each rank of a pipeline materializes only its own
    /// stages: peak memory per rank is its share of the model, not the whole. The model's constructor runs unchanged
    /// with TorchSharp's default device set to meta (tensors with shapes and dtypes but no data); the pipeline then
    /// gives memory and values (<see cref="WeightInitialization"/>) to the tensors of this rank's stages only.
    /// </summary>
    public static class LazyModel
    {
        /// <summary>
        /// Runs <paramref name="constructor"/> on the meta device and restores the default device. What the
        /// constructor initializes is not kept (there is no data): the values come from a
        /// <see cref="WeightInitialization"/>. Tensors the constructor creates with an explicit device are real.
        /// TorchSharp builds a few layers in native code on the CPU and then moves them (Embedding, EmbeddingBag,
        /// MultiheadAttention, the recurrent layers): each of those exists in full for a moment, one at a time.
        /// </summary>
        public static T Construct<T>(Func<T> constructor) where T : nn.Module
        {
            if (constructor is null) throw new ArgumentNullException(nameof(constructor));
            var previous = get_default_device();
            set_default_device(META);
            try
            {
                return constructor();
            }
            finally
            {
                set_default_device(previous);
            }
        }

        /// <summary>True when some parameter or buffer of <paramref name="module"/> has no memory (is on the meta device).</summary>
        public static bool IsLazy(nn.Module module) => MetaTensors.Any(module);

        /// <summary>
        /// Gives the whole model memory and values in this process: the one-process counterpart of a pipeline built
        /// with the same <paramref name="initialization"/> (with <see cref="WeightInitialization.Seeded"/>, the same
        /// seed gives every tensor the same values as on the pipeline's ranks). Returns the tensors it created.
        /// </summary>
        public static IReadOnlyList<MaterializedTensor> Materialize(nn.Module model, WeightInitialization initialization) =>
            Materialize(new[] { ("", model) }, initialization);

        internal static IReadOnlyList<MaterializedTensor> Materialize(IEnumerable<(string Prefix, nn.Module Root)> roots, WeightInitialization initialization)
        {
            if (initialization is null) throw new ArgumentNullException(nameof(initialization));
            var tensors = MetaTensors.Materialize(roots, initialization.Device);
            initialization.Initialize(tensors);
            return tensors;
        }
    }
}
