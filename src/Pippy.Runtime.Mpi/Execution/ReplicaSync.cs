using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Runtime.Transport;
using static TorchSharp.torch;

namespace Pippy.Runtime.Execution
{
    /// <summary>
    /// Keeps the copies of replicated parameters (shared submodules, tied weights) identical across the ranks that
    /// hold them: the lowest stage's values are broadcast once, and after each step every copy's gradient becomes
    /// the sum of all copies' gradients (what the one parameter of the plain model receives). The sum is formed on
    /// the lowest stage in stage order and sent back, so every copy gets bitwise the same gradient. Messages go over
    /// their own communicator, apart from the schedule's.
    /// </summary>
    internal sealed class ReplicaSync
    {
        private readonly TensorTransport _transport;
        private readonly int _rank;
        private readonly List<Group> _groups = new();

        /// <summary>
        /// One replicated group as this rank holds it. <see cref="Copies"/>[i] are this rank's distinct parameter objects
        /// of the group's i-th parameter, the lowest stage's first: a submodule shared by two stages of this rank is one
        /// object (listed once), while a tied weight on two stages of this rank (stages 0 and 2p-1 in a V) is two.
        /// </summary>
        private sealed record Group(int Index, string Name, int[] Ranks, TorchSharp.Modules.Parameter[][] Copies)
        {
            public bool IsRoot(int rank) => Ranks[0] == rank;
        }

        /// <remarks>Ranks are ordered by their lowest replica stage, the root first; the root's lowest copy is the group's value.</remarks>
        public ReplicaSync(StageGraph graph, IReadOnlyList<PipelineStage> stages, IReadOnlyList<int> rankOfStage, int rank, TensorTransport transport)
        {
            _transport = transport;
            _rank = rank;
            for (int g = 0; g < graph.Replicated.Count; g++)
            {
                var group = graph.Replicated[g];
                var ranks = group.Replicas.OrderBy(r => r.Stage).Select(r => rankOfStage[r.Stage]).Distinct().ToArray();
                var mine = group.Replicas.Where(r => rankOfStage[r.Stage] == rank).OrderBy(r => r.Stage).ToArray();
                if (mine.Length == 0) continue;
                var perReplica = mine.Select(replica =>
                {
                    var stage = stages.Single(s => s.Index == replica.Stage);
                    var parameters = stage.named_parameters()
                        .Where(p => replica.WholeModule ? p.name.StartsWith(replica.Path + ".", StringComparison.Ordinal) : p.name == replica.Path)
                        .OrderBy(p => replica.WholeModule ? p.name.Substring(replica.Path.Length) : "", StringComparer.Ordinal)
                        .Select(p => p.parameter)
                        .ToArray();
                    // A module without parameters (a Dropout used by two stages) has nothing to keep identical.
                    if (parameters.Length == 0 && !replica.WholeModule)
                        throw new InvalidOperationException($"Stage {stage.Index} has no parameter '{replica.Path}' for the replicated group {group}.");
                    return parameters;
                }).ToArray();
                int count = perReplica[0].Length;
                if (perReplica.Any(p => p.Length != count))
                    throw new InvalidOperationException($"The copies of the replicated group {group} have different numbers of parameters on rank {rank}: {string.Join(", ", perReplica.Select(p => p.Length))}.");
                if (count == 0) continue;
                var copies = Enumerable.Range(0, count)
                    .Select(i => perReplica.Select(p => p[i]).Aggregate(new List<TorchSharp.Modules.Parameter>(), (distinct, p) =>
                    {
                        if (!distinct.Any(d => ParameterSet.Same(d, p))) distinct.Add(p);
                        return distinct;
                    }).ToArray())
                    .ToArray();
                if (ranks.Length < 2 && copies.All(c => c.Length < 2)) continue; // one object on one rank: nothing to keep identical
                _groups.Add(new Group(g, group.ToString(), ranks, copies));
            }
        }

        /// <summary>The parameters whose gradients <see cref="SumGradients"/> replaces (every copy this rank holds).</summary>
        public IEnumerable<TorchSharp.Modules.Parameter> Parameters => _groups.SelectMany(g => g.Copies.SelectMany(c => c));

        /// <summary>
        /// True for every copy but one of each replicated parameter: the root rank's lowest-stage copy is the one a norm
        /// counts. False for parameters that are not replicated.
        /// </summary>
        public bool IsSecondaryCopy(TorchSharp.Modules.Parameter parameter)
        {
            foreach (var group in _groups)
                foreach (var copies in group.Copies)
                    for (int k = 0; k < copies.Length; k++)
                        if (ParameterSet.Same(copies[k], parameter)) return !(k == 0 && group.IsRoot(_rank));
            return false;
        }

        /// <summary>Copies the lowest stage's values into every other copy, on other ranks and on this one.</summary>
        public void BroadcastValues()
        {
            using var noGrad = no_grad();
            foreach (var group in _groups)
            {
                int root = group.Ranks[0];
                for (int i = 0; i < group.Copies.Length; i++)
                {
                    var copies = group.Copies[i];
                    int tag = Tag(group.Index, i, phase: 0);
                    if (group.Ranks.Length > 1)
                    {
                        if (_rank == root)
                        {
                            foreach (int other in group.Ranks.Skip(1)) _transport.Send(copies[0], other, tag);
                        }
                        else
                        {
                            var value = _transport.Receive(new[] { (root, tag) }, copies[0].device)[0].Value
                                ?? throw new InvalidOperationException($"Rank {root} sent no value for replicated parameter {i} of group {group.Name}.");
                            CheckShape(copies[0], value, group.Name);
                            copies[0].copy_(value);
                        }
                    }
                    foreach (var copy in copies.Skip(1))
                    {
                        CheckShape(copy, copies[0], group.Name);
                        copy.copy_(copies[0]);
                    }
                }
                _transport.WaitForSends();
            }
        }

        /// <summary>
        /// Replaces every copy's gradient by the sum over all copies (a missing gradient counts as zero): this rank's
        /// copies first, then across ranks, formed on the root in rank order and sent back so every copy gets bitwise
        /// the same gradient.
        /// </summary>
        public void SumGradients()
        {
            using var noGrad = no_grad();
            foreach (var group in _groups)
            {
                int root = group.Ranks[0];
                for (int i = 0; i < group.Copies.Length; i++)
                {
                    var copies = group.Copies[i];
                    var parameter = copies[0];
                    // Summed in float32 where the parameter is narrower (bf16, fp16), rounded once at the end.
                    var total = DataParallelSync.SumType(parameter.grad is { } first ? first.clone() : zeros_like(parameter));
                    foreach (var copy in copies.Skip(1))
                        if (copy.grad is { } grad) total.add_(grad);
                    if (group.Ranks.Length > 1)
                    {
                        if (_rank == root)
                        {
                            // Received onto the parameter's device: a CUDA gradient cannot be summed with a CPU one.
                            var others = _transport.Receive(group.Ranks.Skip(1).Select(r => (r, Tag(group.Index, i, phase: 1))).ToArray(), parameter.device);
                            foreach (var other in others) total.add_(other.Value!);
                            foreach (int other in group.Ranks.Skip(1)) _transport.Send(total, other, Tag(group.Index, i, phase: 2));
                        }
                        else
                        {
                            _transport.Send(total, root, Tag(group.Index, i, phase: 1));
                            total = _transport.Receive(new[] { (root, Tag(group.Index, i, phase: 2)) }, parameter.device)[0].Value!;
                        }
                    }
                    if (total.dtype != parameter.dtype) total = total.to_type(parameter.dtype);
                    for (int k = 0; k < copies.Length; k++)
                    {
                        if (copies[k].grad is { } grad) grad.copy_(total);
                        else copies[k].grad = k == copies.Length - 1 ? total : total.clone();
                    }
                }
                _transport.WaitForSends();
            }
        }

        private static void CheckShape(Tensor mine, Tensor lowest, string group)
        {
            if (!mine.shape.SequenceEqual(lowest.shape))
                throw new InvalidOperationException(
                    $"Replicated parameter group {group}: shape [{string.Join(", ", mine.shape)}] here but [{string.Join(", ", lowest.shape)}] on the lowest stage; tied weights must have the same shape.");
        }

        private static int Tag(int group, int parameter, int phase) => (group * 4096 + parameter) * 3 + phase;

    }
}
