using System;
using System.Collections.Generic;
using System.Linq;
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
            if (spec.IsCustom) return Divide(new[] { (what, batch, spec) }, count)[0];
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

        /// <summary>
        /// Divides several values (a model's inputs, then the target) into <paramref name="count"/> parts each, as their
        /// specs say: <c>Split</c> and <c>Replicate</c> each value alone, and one <see cref="MicrobatchSpec.Custom(string, Func{Tensor[], int, Tensor[][]})"/>
        /// object all the values it was given to together (their tensors in the order of <paramref name="values"/>).
        /// Returns, per value, its <paramref name="count"/> parts. <paramref name="among"/> says what the parts are for
        /// messages ("microbatches", "data-parallel replicas").
        /// </summary>
        public static Tensor[][] Divide(IReadOnlyList<(string What, Tensor Value, MicrobatchSpec Spec)> values, int count, string among = "microbatches")
        {
            if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "There must be at least one part.");
            var result = new Tensor[values.Count][];
            for (int i = 0; i < values.Count; i++)
            {
                if (result[i] is not null) continue;
                var spec = values[i].Spec;
                if (!spec.IsCustom)
                {
                    result[i] = Split(values[i].Value, count, spec, among == "microbatches" ? values[i].What : $"{values[i].What} (divided among {among})");
                    continue;
                }
                int[] members = Enumerable.Range(i, values.Count - i).Where(j => ReferenceEquals(values[j].Spec, spec)).ToArray();
                string names = string.Join(" and ", members.Select(j => values[j].What));
                Tensor[][]? parts;
                try
                {
                    parts = spec.Splitter!(members.Select(j => values[j].Value).ToArray(), count);
                }
                catch (Exception e)
                {
                    throw new ArgumentException($"MicrobatchSpec.Custom '{spec.Name}' failed to divide {names} into {count} {among}: {e.Message}", e);
                }
                if (parts is null || parts.Length != count)
                    throw new ArgumentException(
                        $"MicrobatchSpec.Custom '{spec.Name}' divided {names} into {parts?.Length ?? 0} parts, but there are {count} {among}: it must return one part per {Singular(among)}.");
                for (int k = 0; k < count; k++)
                {
                    if (parts[k] is null || parts[k].Length != members.Length)
                        throw new ArgumentException(
                            $"MicrobatchSpec.Custom '{spec.Name}' returned {parts[k]?.Length ?? 0} tensor(s) in part {k} of {names}, but it was given {members.Length}: " +
                            $"each part must hold one tensor per value, in the order given ({names}).");
                    for (int m = 0; m < members.Length; m++)
                        if (parts[k][m] is null)
                            throw new ArgumentException($"MicrobatchSpec.Custom '{spec.Name}' returned no tensor for {values[members[m]].What} in part {k}.");
                }
                for (int m = 0; m < members.Length; m++) result[members[m]] = parts.Select(p => p[m]).ToArray();
            }
            return result;
        }

        private static string Singular(string among) => among.EndsWith("es", StringComparison.Ordinal) && among.StartsWith("micro", StringComparison.Ordinal) ? "microbatch" : among.TrimEnd('s');

        /// <summary>Splits along dimension 0.</summary>
        public static Tensor[] Split(Tensor batch, int count, string what) => Split(batch, count, MicrobatchSpec.Split(0), what);
    }
}
