using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Pippy.Runtime.Execution
{
    /// <summary>
    /// Sums the gradients that several copies of a parameter received (replicated and tied copies across stages, and
    /// data-parallel replicas), and only what they received since the last sum. Gradients accumulate across Steps like
    /// <c>backward()</c>: a gradient that was already summed (a Step not zeroed after) must not be summed again, or it
    /// would count once per copy. So before the first Step after a sum, every such parameter's non-zero gradient is set
    /// aside (the tensor itself, no copy), the Steps accumulate this rank's own contributions, and the sum of those is
    /// added to what was set aside. Steps inside <see cref="NoSync"/> only accumulate; the first Step outside it sums
    /// everything accumulated since, once (as DistributedDataParallel's <c>no_sync</c>).
    /// </summary>
    internal sealed class GradientReduction
    {
        private readonly IReadOnlyList<Parameter> _parameters;
        private readonly Action _reduce;
        private readonly Dictionary<Parameter, Tensor> _setAside = new();
        private int _noSyncDepth;

        /// <param name="parameters">Every parameter whose gradient <paramref name="reduce"/> replaces by a sum over copies.</param>
        public GradientReduction(IEnumerable<Parameter> parameters, Action reduce)
        {
            _parameters = ParameterSet.Distinct(parameters);
            _reduce = reduce;
        }

        /// <summary>True when Steps ran inside <see cref="NoSync"/> and their gradients are not summed yet.</summary>
        public bool Pending { get; private set; }

        /// <summary>How many times the gradients were summed (once per Step outside <see cref="NoSync"/>, where anything is replicated).</summary>
        public int Reductions { get; private set; }

        public bool Active => _noSyncDepth > 0;

        public IDisposable NoSync()
        {
            _noSyncDepth++;
            return new Scope(this);
        }

        /// <summary>Before a Step's backward: sets aside gradients that were summed already (only at the first Step after a sum).</summary>
        public void BeforeStep()
        {
            if (Pending || _parameters.Count == 0) return;
            using var noGrad = no_grad();
            foreach (var p in _parameters)
            {
                // A zero gradient (zero_grad that zeroes in place) accumulates in place: nothing to set aside.
                if (p.grad is { } grad && grad.any().item<bool>())
                {
                    _setAside[p] = grad;
                    p.grad = null;
                }
            }
        }

        /// <summary>After a Step's backward: sums this rank's contributions across copies, unless inside <see cref="NoSync"/>.</summary>
        public void AfterStep()
        {
            if (_parameters.Count == 0) return;
            if (Active)
            {
                Pending = true;
                return;
            }
            _reduce();
            Reductions++;
            Pending = false;
            if (_setAside.Count == 0) return;
            using var noGrad = no_grad();
            foreach (var (p, earlier) in _setAside)
            {
                if (p.grad is { } grad) earlier.add_(grad);
                p.grad = earlier;
            }
            _setAside.Clear();
        }

        private sealed class Scope(GradientReduction owner) : IDisposable
        {
            private bool _disposed;

            public void Dispose()
            {
                if (_disposed) return;
                _disposed = true;
                owner._noSyncDepth--;
            }
        }
    }
}
