using System;
using static TorchSharp.torch;

namespace Pippy.Runtime.Execution
{
    /// <summary>Divides a batch's tensors into microbatches as their <see cref="MicrobatchSpec"/> says.</summary>
    public static class Microbatching
    {
        /// <summary>The <paramref name="count"/> microbatch values of <paramref name="batch"/>; views, not copies.</summary>
        public static Tensor[] Split(Tensor batch, int count, MicrobatchSpec spec, string what)
        {
            if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "There must be at least one microbatch.");
            if (spec.Dimension is not int dimension)
            {
                var copies = new Tensor[count];
                Array.Fill(copies, batch);
                return copies;
            }
            if (batch.dim() == 0)
                throw new ArgumentException($"{what} is a scalar; it needs a dimension to be split into microbatches (or use MicrobatchSpec.Replicate).", nameof(batch));
            int dim = dimension < 0 ? dimension + (int)batch.dim() : dimension;
            if (dim < 0 || dim >= batch.dim())
                throw new ArgumentException($"{what} has {batch.dim()} dimensions; it cannot be split along dimension {dimension}.", nameof(batch));
            long size = batch.shape[dim];
            if (size < count)
                throw new ArgumentException(
                    $"{what} has {size} rows in dimension {dim}, fewer than the {count} microbatches: every microbatch needs at least one row. " +
                    $"Use a batch of at least {count} rows or set PipelineOptions.Microbatches to at most {size}.", nameof(batch));
            return batch.tensor_split(count, dim: dim);
        }

        /// <summary>Splits along dimension 0.</summary>
        public static Tensor[] Split(Tensor batch, int count, string what) => Split(batch, count, MicrobatchSpec.Split(0), what);
    }
}
