using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using static TorchSharp.torch;

namespace Pippy.Runtime.Materialization
{
    /// <summary>
    /// Initializes one tensor of a model built with <see cref="LazyModel.Construct{T}"/>: <paramref name="tensor"/>
    /// has memory but no values yet; <paramref name="name"/> is its name in the model (<c>blocks.3.attn.weight</c>)
    /// and <paramref name="owner"/> the module that holds it. Torch's default generator is already seeded for this
    /// tensor. Return true when you gave it its values, false to leave it to the layer's default.
    /// </summary>
    public delegate bool TensorInitializer(string name, nn.Module owner, Tensor tensor);

    /// <summary>
    /// Where the values of a lazily built model's tensors come from, on the rank that holds them. Every rank gives
    /// memory and values only to its own stages' tensors, so the other stages are never materialized.
    /// </summary>
    public abstract class WeightInitialization
    {
        private protected WeightInitialization(Device? device) => Device = device ?? CPU;

        /// <summary>The device the tensors are created on (the CPU unless given).</summary>
        public Device Device { get; }

        /// <summary>
        /// Each tensor gets the values its layer's constructor gives (TorchSharp's defaults for Linear, Bilinear,
        /// convolutions, Embedding and normalization layers), or those of <paramref name="custom"/>, which is asked
        /// first; random draws come from torch's generator seeded from <paramref name="seed"/> and the tensor's name.
        /// So a tensor's values depend only on the seed and its name, not on which rank or stage layout creates it:
        /// <see cref="LazyModel.Materialize"/> with the same seed gives the one-process model the same values.
        /// A tensor that neither knows is an error that names it. Torch's generator is restored afterwards.
        /// </summary>
        public static WeightInitialization Seeded(long seed, TensorInitializer? custom = null, Device? device = null) =>
            new SeededInitialization(seed, custom, device);

        /// <summary>
        /// The values come from a plain TorchSharp model file (<c>model.save(path)</c>, or a merged pipeline
        /// checkpoint). Each rank reads only its own tensors and skips the rest of the file; a tensor missing from the
        /// file, or saved with another shape or dtype, is an error that names it.
        /// </summary>
        public static WeightInitialization FromFile(string path, Device? device = null) => new FileInitialization(path, device);

        /// <summary>
        /// The tensors get memory but no values: <c>LoadCheckpoint</c> gives them theirs, and must be called before
        /// the first step (a step or forward before it is an error). For resuming training from a pipeline checkpoint.
        /// </summary>
        public static WeightInitialization FromCheckpoint(Device? device = null) => new CheckpointInitialization(device);

        /// <summary>True when the values are given later, by <c>LoadCheckpoint</c>.</summary>
        internal virtual bool AwaitsCheckpoint => false;

        /// <summary>Gives the just materialized tensors their values.</summary>
        internal abstract void Initialize(IReadOnlyList<MaterializedTensor> tensors);

        /// <summary>A 63-bit seed for one tensor: FNV-1a of its name, mixed with the run's seed (splitmix64's finalizer).</summary>
        internal static long TensorSeed(long seed, string name)
        {
            ulong hash = 14695981039346656037UL;
            foreach (byte b in Encoding.UTF8.GetBytes(name)) hash = (hash ^ b) * 1099511628211UL;
            ulong z = hash ^ (ulong)seed;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            return (long)(z & long.MaxValue);
        }

        private sealed class SeededInitialization(long seed, TensorInitializer? custom, Device? device) : WeightInitialization(device)
        {
            internal override void Initialize(IReadOnlyList<MaterializedTensor> tensors)
            {
                var unknown = new List<MaterializedTensor>();
                using var state = TorchSharp.torch.get_rng_state();
                try
                {
                    foreach (var tensor in tensors)
                    {
                        TorchSharp.torch.manual_seed(TensorSeed(seed, tensor.Name));
                        bool done;
                        using (no_grad()) done = custom?.Invoke(tensor.Name, tensor.Owner, tensor.Tensor) == true || LayerDefaults.TryInitialize(tensor);
                        if (!done) unknown.Add(tensor);
                    }
                }
                finally
                {
                    TorchSharp.torch.set_rng_state(state);
                }
                if (unknown.Count > 0)
                    throw new InvalidOperationException(
                        $"No initial values for {string.Join(", ", unknown.Take(5).Select(t => $"'{t.Name}' ({t.Owner.GetType().Name}.{t.LocalName})"))}" +
                        (unknown.Count > 5 ? $" and {unknown.Count - 5} more" : "") +
                        ": the model was built on the meta device (LazyModel.Construct), where its constructor's own initialization does nothing, and " +
                        "these are not parameters of a TorchSharp layer with known defaults. Give WeightInitialization.Seeded a TensorInitializer " +
                        "that sets them (it gets each tensor's name), or load the values with WeightInitialization.FromFile.");
            }
        }

        private sealed class CheckpointInitialization(Device? device) : WeightInitialization(device)
        {
            internal override bool AwaitsCheckpoint => true;

            internal override void Initialize(IReadOnlyList<MaterializedTensor> tensors)
            {
                // Zeros rather than uninitialized memory: a forgotten LoadCheckpoint is caught before the first step,
                // and nothing reads garbage before then.
                using var noGrad = no_grad();
                foreach (var tensor in tensors) tensor.Tensor.zero_();
            }
        }

        private sealed class FileInitialization(string path, Device? device) : WeightInitialization(device)
        {
            internal override void Initialize(IReadOnlyList<MaterializedTensor> tensors) => ModelFile.Read(path, tensors);
        }
    }
}
