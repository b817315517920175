using System;
using System.Collections.Generic;
using System.Linq;
using static TorchSharp.torch;

namespace Pippy.Runtime
{
    /// <summary>
    /// One stage's contiguous range of the children of a model's <c>Sequential</c> (a <c>[SplitInto(k)]</c>
    /// Sequential), chosen like <see cref="StageModules{T}"/>'s range of a module list: by parameter count, or by
    /// measured time. Its forward runs the range's children in order, as the Sequential runs all of them, and it
    /// registers each child under its own name in the Sequential, so parameter names stay those of the model
    /// (<c>layers.conv1.weight</c>) and a plain checkpoint loads into the stage.
    /// </summary>
    public sealed class StageSequential : nn.Module<Tensor, Tensor>, IStageModuleRange
    {
        private readonly nn.IModule<Tensor, Tensor>[] _children;
        private readonly string[] _names;

        public StageSequential(string name, TorchSharp.Modules.Sequential all, int parts, int part) : base(name)
        {
            ArgumentNullException.ThrowIfNull(all);
            var children = all.named_children().ToList();
            var (start, length, cost, total, unit) = PipelineRanges.Range(name, children.Select(c => c.module).ToList(), parts, part);
            (Start, Cost, TotalCost, Unit) = (start, cost, total, unit);
            _children = new nn.IModule<Tensor, Tensor>[length];
            _names = new string[length];
            for (int i = 0; i < length; i++)
            {
                var (childName, child) = children[start + i];
                // TorchSharp's Sequential holds only IModule<Tensor, Tensor> children (its append takes nothing else): a guard.
                _children[i] = child as nn.IModule<Tensor, Tensor> ?? throw new InvalidOperationException(
                    $"The Sequential '{name}' is divided among stages by [SplitInto], but its child '{childName}' is a {child.GetType().Name}, " +
                    "not a Module<Tensor, Tensor>: a stage runs its children one after the other on one tensor. Make every child a Module<Tensor, Tensor>, or split the model with [SplitEnd].");
                _names[i] = childName;
                register_module(childName, child);
            }
        }

        /// <summary>The index among the Sequential's children of this range's first child.</summary>
        public int Start { get; }

        /// <summary>The number of children this stage runs.</summary>
        public int Count => _children.Length;

        /// <summary>The predicted cost of the stage's share: its children's parameters, or their measured time.</summary>
        public long Cost { get; }

        /// <summary>The cost of the whole Sequential.</summary>
        public long TotalCost { get; }

        /// <summary>What <see cref="Cost"/> counts: "parameters" or "µs measured".</summary>
        public string Unit { get; }

        /// <summary>The names of this stage's children in the Sequential, in order.</summary>
        public IReadOnlyList<string> Names => _names;

        /// <summary>Runs this stage's children in order, as the Sequential's own forward runs all of them.</summary>
        public override Tensor forward(Tensor input)
        {
            var x = input;
            foreach (var child in _children) x = child.call(x); // as Sequential.forward: with the children's hooks
            return x;
        }

        public override string ToString() =>
            $"{GetName()}[{Start}..{Start + Count - 1}] ({_names[0]}..{_names[^1]}), {Cost:N0} of {TotalCost:N0} {Unit} ({100.0 * Cost / Math.Max(1, TotalCost):F1}%)";
    }
}
