using System;
using static TorchSharp.torch;

namespace Pippy.Runtime.Execution
{
    /// <summary>Splitting a batch into microbatches and merging results back, along dimension 0.</summary>
    public static class Microbatching
    {
        /// <summary>
        /// Splits along dimension 0 with <c>tensor_split</c> semantics: sizes differ by at most one, the first chunks
        /// take the remainder (a batch of 50 in 8 gives 7, 7, 6, 6, 6, 6, 6, 6). The chunks are views, not copies.
        /// </summary>
        public static Tensor[] Split(Tensor batch, int count, string what)
        {
            if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "There must be at least one microbatch.");
            if (batch.dim() == 0) throw new ArgumentException($"{what} is a scalar; it needs a batch dimension (dimension 0) to be split into microbatches.", nameof(batch));
            long size = batch.shape[0];
            if (size < count)
                throw new ArgumentException(
                    $"{what} has {size} rows in dimension 0, fewer than the {count} microbatches: every microbatch needs at least one row. " +
                    $"Use a batch of at least {count} rows or set PipelineOptions.Microbatches to at most {size}.", nameof(batch));
            return batch.tensor_split(count, dim: 0);
        }

        /// <summary>Concatenates microbatch results along dimension 0.</summary>
        public static Tensor Merge(Tensor[] parts) => parts.Length == 1 ? parts[0] : cat(parts, 0);
    }
}
