using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using static TorchSharp.torch;

namespace Pippy.Runtime
{
    /// <summary>
    /// One stage's contiguous range of a model's module list (a <c>[SplitInto(k)]</c> list), chosen so that the
    /// stages' parameter counts are as even as the blocks allow (<see cref="PipelineRanges.Balanced"/>). It
    /// enumerates and indexes like the list did (index 0 is the range's first block, <see cref="Count"/> its
    /// length), so the model's own loop runs unchanged over it, and it registers each block under its index in the
    /// whole list, so parameter names stay those of the model (<c>blocks.4.linear.weight</c>).
    /// </summary>
    public sealed class StageModules<T> : nn.Module, IReadOnlyList<T>, IStageModuleRange where T : nn.Module
    {
        private readonly T[] _items;

        public StageModules(string name, IList<T> all, int parts, int part) : base(name)
        {
            (Start, int length, Cost, TotalCost, Unit) = PipelineRanges.Range(name, all.Cast<nn.Module>().ToList(), parts, part);
            _items = new T[length];
            for (int i = 0; i < length; i++)
            {
                _items[i] = all[Start + i];
                register_module((Start + i).ToString(System.Globalization.CultureInfo.InvariantCulture), _items[i]);
            }
        }

        /// <summary>The index in the whole list of this range's first block.</summary>
        public int Start { get; }

        /// <summary>The predicted cost of the stage's share of the list: its blocks' parameters, or their measured time.</summary>
        public long Cost { get; }

        /// <summary>The cost of the whole list.</summary>
        public long TotalCost { get; }

        /// <summary>What <see cref="Cost"/> counts: "parameters" or "µs measured".</summary>
        public string Unit { get; }

        public override string ToString() =>
            $"{GetName()}[{Start}..{Start + Count - 1}], {Cost:N0} of {TotalCost:N0} {Unit} ({100.0 * Cost / System.Math.Max(1, TotalCost):F1}%)";

        public int Count => _items.Length;
        public T this[int index] => _items[index];
        public IEnumerator<T> GetEnumerator() => ((IEnumerable<T>)_items).GetEnumerator();
        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }

    /// <summary>A stage's range of a divided module list, for the plan the runner prints.</summary>
    public interface IStageModuleRange
    {
        int Start { get; }
        int Count { get; }
        long Cost { get; }
        long TotalCost { get; }
    }

    /// <summary>How a list of blocks is divided among the stages that share it.</summary>
    public static class PipelineRanges
    {
        // The generated stage constructors create their StageModules themselves, so the runner hands measured costs to
        // them through this (per thread, only while it creates its stages) rather than through their arguments.
        [ThreadStatic] private static IReadOnlyDictionary<string, long[]>? _measured;

        /// <summary>
        /// Part <paramref name="part"/> of <paramref name="parts"/> of the blocks of <paramref name="name"/>: its start,
        /// length and cost, the whole list's cost, and what the costs count. Measured costs when the runner was asked
        /// to balance by time (StageBalance.ByTime), else parameter counts.
        /// </summary>
        internal static (int Start, int Length, long Cost, long TotalCost, string Unit) Range(string name, IReadOnlyList<nn.Module> all, int parts, int part)
        {
            var measured = MeasuredCosts(name);
            if (measured is not null && measured.Length != all.Count)
                throw new InvalidOperationException($"The measured costs of '{name}' have {measured.Length} blocks but the list has {all.Count}.");
            var costs = measured ?? all.Select(block => block.parameters().Sum(p => p.NumberOfElements)).ToArray();
            var (start, length) = Balanced(costs, parts, name)[part];
            return (start, length, costs.Skip(start).Take(length).Sum(), costs.Sum(), measured is null ? "parameters" : "µs measured");
        }

        internal static long[]? MeasuredCosts(string list) => _measured is not null && _measured.TryGetValue(list, out var costs) ? costs : null;

        internal static T WithMeasuredCosts<T>(IReadOnlyDictionary<string, long[]>? costs, Func<T> create)
        {
            var previous = _measured;
            _measured = costs;
            try
            {
                return create();
            }
            finally
            {
                _measured = previous;
            }
        }

        /// <summary>
        /// Divides blocks of the given costs into <paramref name="parts"/> contiguous non-empty ranges with the
        /// smallest possible largest range cost; among those, the most even (smallest sum of squared costs), and
        /// among those, the one whose earlier ranges are longer. Equal costs give the remainder to the first ranges
        /// (10 in 4: 3, 3, 2, 2); a block twice as heavy as the others counts twice. Every rank computes the same.
        /// </summary>
        public static (int Start, int Length)[] Balanced(IReadOnlyList<long> costs, int parts, string what)
        {
            int n = costs.Count;
            if (parts < 1) throw new ArgumentOutOfRangeException(nameof(parts), parts, "There must be at least one part.");
            if (n < parts)
                throw new InvalidOperationException($"{what} has {n} block(s) but is split into {parts} stages: every stage needs at least one block. Use [SplitInto({Math.Max(n, 1)})] or more blocks.");
            var prefix = new long[n + 1];
            for (int i = 0; i < n; i++) prefix[i + 1] = prefix[i] + costs[i];
            // best[j, i]: the best division of the first i blocks into j ranges, as (largest cost, sum of squares).
            var best = new (long Max, double Squares)?[parts + 1, n + 1];
            var cut = new int[parts + 1, n + 1];
            best[0, 0] = (0, 0);
            for (int j = 1; j <= parts; j++)
            {
                for (int i = j; i <= n - (parts - j); i++)
                {
                    // From the shortest last range up, keeping the first of equals: earlier ranges get the remainder.
                    for (int k = i - 1; k >= j - 1; k--)
                    {
                        if (best[j - 1, k] is not { } before) continue;
                        long cost = prefix[i] - prefix[k];
                        var candidate = (Max: Math.Max(before.Max, cost), Squares: before.Squares + (double)cost * cost);
                        if (best[j, i] is not { } current || candidate.Max < current.Max
                            || (candidate.Max == current.Max && candidate.Squares < current.Squares))
                        {
                            best[j, i] = candidate;
                            cut[j, i] = k;
                        }
                    }
                }
            }
            var ranges = new (int Start, int Length)[parts];
            for (int j = parts, i = n; j >= 1; i = cut[j, i], j--) ranges[j - 1] = (cut[j, i], i - cut[j, i]);
            return ranges;
        }
    }
}
