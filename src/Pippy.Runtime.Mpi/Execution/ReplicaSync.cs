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
        private readonly List<(int GroupIndex, int[] Ranks, TorchSharp.Modules.Parameter[] Parameters)> _groups = new();

        /// <remarks>
        /// The copies are per rank: replicas on stages of one rank share the parameter object (the model's own), so
        /// their gradients are already summed there. Ranks are ordered by their lowest replica stage, the root first.
        /// </remarks>
        public ReplicaSync(StageGraph graph, IReadOnlyList<PipelineStage> stages, IReadOnlyList<int> rankOfStage, int rank, TensorTransport transport)
        {
            _transport = transport;
            _rank = rank;
            for (int g = 0; g < graph.Replicated.Count; g++)
            {
                var group = graph.Replicated[g];
                var ranks = group.Replicas.OrderBy(r => r.Stage).Select(r => rankOfStage[r.Stage]).Distinct().ToArray();
                var mine = group.Replicas.Where(r => rankOfStage[r.Stage] == rank).OrderBy(r => r.Stage).FirstOrDefault();
                if (mine is null || ranks.Length < 2) continue;
                var stage = stages.Single(s => s.Index == mine.Stage);
                var parameters = stage.named_parameters()
                    .Where(p => mine.WholeModule ? p.name.StartsWith(mine.Path + ".", StringComparison.Ordinal) : p.name == mine.Path)
                    .OrderBy(p => mine.WholeModule ? p.name.Substring(mine.Path.Length) : "", StringComparer.Ordinal)
                    .Select(p => p.parameter)
                    .ToArray();
                if (parameters.Length == 0)
                    throw new InvalidOperationException($"Stage {stage.Index} has no parameter '{mine.Path}' for the replicated group {group}.");
                _groups.Add((g, ranks, parameters));
            }
        }

        /// <summary>True for a replicated parameter whose group's root is another rank: count it once, there.</summary>
        public bool IsCopyOwnedElsewhere(TorchSharp.Modules.Parameter parameter) =>
            _groups.Any(g => g.Ranks[0] != _rank && g.Parameters.Any(p => ParameterSet.Same(p, parameter)));

        /// <summary>Copies the lowest stage's values into every other replica.</summary>
        public void BroadcastValues()
        {
            using var noGrad = no_grad();
            foreach (var (g, ranks, parameters) in _groups)
            {
                int root = ranks[0];
                for (int i = 0; i < parameters.Length; i++)
                {
                    int tag = Tag(g, i, phase: 0);
                    if (_rank == root)
                    {
                        foreach (int other in ranks.Skip(1)) _transport.Send(parameters[i], other, tag);
                    }
                    else
                    {
                        var value = _transport.Receive(new[] { (root, tag) }, parameters[i].device)[0].Value
                            ?? throw new InvalidOperationException($"Stage {root} sent no value for replicated parameter {i} of group {g}.");
                        CheckShape(parameters[i], value, g);
                        parameters[i].copy_(value);
                    }
                }
                _transport.WaitForSends();
            }
        }

        /// <summary>Replaces every replica's gradient by the sum over all replicas (a missing gradient counts as zero).</summary>
        public void SumGradients()
        {
            using var noGrad = no_grad();
            foreach (var (g, ranks, parameters) in _groups)
            {
                int root = ranks[0];
                for (int i = 0; i < parameters.Length; i++)
                {
                    var parameter = parameters[i];
                    var own = parameter.grad ?? zeros_like(parameter);
                    Tensor total;
                    if (_rank == root)
                    {
                        // Received onto the parameter's device: a CUDA gradient cannot be summed with a CPU one.
                        var others = _transport.Receive(ranks.Skip(1).Select(r => (r, Tag(g, i, phase: 1))).ToArray(), parameter.device);
                        total = own.clone();
                        foreach (var other in others) total.add_(other.Value!);
                        foreach (int other in ranks.Skip(1)) _transport.Send(total, other, Tag(g, i, phase: 2));
                    }
                    else
                    {
                        _transport.Send(own, root, Tag(g, i, phase: 1));
                        total = _transport.Receive(new[] { (root, Tag(g, i, phase: 2)) }, parameter.device)[0].Value!;
                    }
                    if (parameter.grad is null) parameter.grad = total;
                    else parameter.grad.copy_(total);
                }
                _transport.WaitForSends();
            }
        }

        private static void CheckShape(Tensor mine, Tensor received, int group)
        {
            if (!mine.shape.SequenceEqual(received.shape))
                throw new InvalidOperationException(
                    $"Replicated parameter group {group}: shape [{string.Join(", ", mine.shape)}] here but [{string.Join(", ", received.shape)}] on the lowest stage; tied weights must have the same shape.");
        }

        private static int Tag(int group, int parameter, int phase) => (group * 4096 + parameter) * 3 + phase;

    }
}
