using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Runtime.Communication;
using Pippy.Runtime.Execution;
using TorchSharp.Modules;

namespace Pippy.Runtime
{
    /// <summary>
    /// Optimizer state sharded across data-parallel replicas (ZeRO stage 1): each replica of a pipeline rank owns a
    /// share of that rank's parameters, balanced by size, and its optimizer holds state (AdamW's two moments, say) for
    /// that share only. After the step's gradient sum every replica has every gradient; each updates its share, and
    /// <see cref="Gather"/> then broadcasts each share from its owner, so every replica holds every updated value. The
    /// results are the unsharded optimizer's; the optimizer's memory per rank falls by the number of replicas.
    /// <code>
    /// var shard = pipe.ShardOptimizerState();
    /// var optimizer = optim.AdamW(shard.Parameters, 1e-3);
    /// ... pipe.Step(...); pipe.ClipGradNorm(1.0); optimizer.step(); shard.Gather();
    /// </code>
    /// The gradients are summed with an allreduce before the update (not reduce-scattered), so each replica still holds
    /// every gradient. A checkpoint with the optimizer writes each replica's share to a file of its own, and loads into
    /// the same number of replicas; its parameters merge into the plain model as always. With mixed precision,
    /// <see cref="MixedPrecision{TOutput}.ShardOptimizerState"/> shards the state of the float32 masters the same way.
    /// </summary>
    public sealed class OptimizerShard
    {
        private readonly IReadOnlyList<Parameter> _all;
        private readonly int[] _owner;
        private readonly int _replica;
        private readonly MpiCommunicator _replicas;
        private readonly Transport.DeviceStaging _staging;

        internal OptimizerShard(IReadOnlyList<Parameter> all, int replicaCount, int replica, MpiCommunicator replicas, Transport.DeviceStaging staging)
        {
            _all = all;
            _replicas = replicas;
            _staging = staging;
            _replica = replica;
            Replicas = replicaCount;
            // Largest first, each to the replica with the fewest elements so far (every replica computes the same).
            _owner = new int[all.Count];
            var load = new long[replicaCount];
            foreach (int i in Enumerable.Range(0, all.Count).OrderByDescending(i => all[i].NumberOfElements).ThenBy(i => i))
            {
                int least = Array.IndexOf(load, load.Min());
                _owner[i] = least;
                load[least] += all[i].NumberOfElements;
            }
            Parameters = Enumerable.Range(0, all.Count).Where(i => _owner[i] == replica).Select(i => all[i]).ToArray();
        }

        /// <summary>This replica's share of the rank's parameters: give these to the optimizer.</summary>
        public IReadOnlyList<Parameter> Parameters { get; }

        /// <summary>How many replicas share the state.</summary>
        public int Replicas { get; }

        /// <summary>Elements of every parameter of this rank, and of this replica's share.</summary>
        public (long All, long Mine) Elements => (_all.Sum(p => p.NumberOfElements), Parameters.Sum(p => p.NumberOfElements));

        /// <summary>
        /// After the optimizer's step: every replica's updated share into every replica (one broadcast per replica and
        /// dtype). It also zeroes the gradients of the parameters other replicas own: this replica's optimizer does not
        /// hold them, so its <c>zero_grad</c> would leave them to add into the next Step's.
        /// </summary>
        public void Gather()
        {
            using (TorchSharp.torch.no_grad())
                for (int i = 0; i < _all.Count; i++)
                    if (_owner[i] != _replica) _all[i].grad?.zero_();
            if (Replicas == 1) return;
            for (int root = 0; root < Replicas; root++)
            {
                var owned = Enumerable.Range(0, _all.Count).Where(i => _owner[i] == root).Select(i => _all[i]).ToArray();
                if (owned.Length > 0) DataParallelSync.BroadcastValues(owned, _replicas, _staging, root);
            }
        }
    }
}
