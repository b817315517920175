using System;
using System.Collections;
using System.Collections.Generic;
using static TorchSharp.torch;

namespace Pippy.Runtime
{
    /// <summary>
    /// One stage's contiguous range of a model's module list (a <c>[SplitInto(k)]</c> list). It enumerates and
    /// indexes like the list did (index 0 is the range's first block, <see cref="Count"/> its length), so the
    /// model's own loop runs unchanged over it, and it registers each block under its index in the whole list, so
    /// parameter names stay those of the model (<c>blocks.4.linear.weight</c>).
    /// </summary>
    public sealed class StageModules<T> : nn.Module, IReadOnlyList<T> where T : nn.Module
    {
        private readonly T[] _items;

        public StageModules(string name, IList<T> all, int parts, int part) : base(name)
        {
            (Start, int length) = PipelineRanges.Contiguous(all.Count, parts, part, name);
            _items = new T[length];
            for (int i = 0; i < length; i++)
            {
                _items[i] = all[Start + i];
                register_module((Start + i).ToString(System.Globalization.CultureInfo.InvariantCulture), _items[i]);
            }
        }

        /// <summary>The index in the whole list of this range's first block.</summary>
        public int Start { get; }

        public int Count => _items.Length;
        public T this[int index] => _items[index];
        public IEnumerator<T> GetEnumerator() => ((IEnumerable<T>)_items).GetEnumerator();
        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }

    /// <summary>How a list of blocks is divided among the stages that share it.</summary>
    public static class PipelineRanges
    {
        /// <summary>
        /// Part <paramref name="part"/> of <paramref name="count"/> items in <paramref name="parts"/> contiguous
        /// ranges whose lengths differ by at most one, the first ranges taking the remainder (10 in 4: 3, 3, 2, 2).
        /// </summary>
        public static (int Start, int Length) Contiguous(int count, int parts, int part, string what)
        {
            if (parts < 1 || part < 0 || part >= parts) throw new ArgumentOutOfRangeException(nameof(part), part, $"Part must be in [0, {parts}).");
            if (count < parts)
                throw new InvalidOperationException($"{what} has {count} block(s) but is split into {parts} stages: every stage needs at least one block. Use [SplitInto({Math.Max(count, 1)})] or more blocks.");
            int baseLength = count / parts, remainder = count % parts;
            int start = part * baseLength + Math.Min(part, remainder);
            return (start, baseLength + (part < remainder ? 1 : 0));
        }
    }
}
