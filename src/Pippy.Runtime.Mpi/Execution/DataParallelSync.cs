using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Runtime.Communication;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Pippy.Runtime.Execution
{
    /// <summary>
    /// Data parallelism across pipelines: the same stage's ranks of every replica form one communicator. Values start
    /// equal (broadcast from replica 0), and after each step every gradient becomes the sum over the replicas, in one
    /// allreduce per dtype over a flat buffer of all this rank's gradients (not one per parameter), in float32 for bf16
    /// and fp16 gradients.
    /// </summary>
    internal static class DataParallelSync
    {
        /// <summary>Replica <paramref name="root"/>'s values of <paramref name="parameters"/> into every replica's, one broadcast per dtype.</summary>
        public static void BroadcastValues(IReadOnlyList<Parameter> parameters, MpiCommunicator replicas, Transport.DeviceStaging staging, int root = 0)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            foreach (var group in parameters.GroupBy(p => (p.dtype, p.device.ToString())))
            {
                var flat = staging.ForCollective(cat(group.Select(p => p.detach().reshape(-1)).ToArray()));
                replicas.Broadcast(flat, root, $"the broadcast of replica {root}'s parameters to the data-parallel replicas");
                Scatter(flat, group, (p, part) => p.copy_(part));
            }
        }

        public static void SumGradients(IReadOnlyList<Parameter> parameters, MpiCommunicator replicas, Transport.DeviceStaging staging)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            foreach (var group in parameters.GroupBy(p => (p.dtype, p.device.ToString())))
            {
                // Low-precision gradients (bf16, fp16) are summed in float32, and rounded once, into the gradient.
                var flat = staging.ForCollective(SumType(cat(group.Select(p => (p.grad ?? zeros_like(p)).reshape(-1)).ToArray())));
                var sum = empty_like(flat);
                replicas.Allreduce(flat, sum, ReduceOperation.Sum, "the data-parallel allreduce of the gradients");
                Scatter(sum, group, (p, part) =>
                {
                    if (p.grad is { } grad) grad.copy_(part);
                    else p.grad = zeros_like(p).copy_(part); // on the parameter's device, wherever the sum was formed
                });
            }
        }

        /// <summary>A gradient in the dtype its sum is formed in: float32 for anything narrower than float32 (bf16, fp16).</summary>
        public static Tensor SumType(Tensor gradient) =>
            gradient.dtype is ScalarType.Float32 or ScalarType.Float64 ? gradient : gradient.to_type(ScalarType.Float32);

        /// <summary>The sum of a scalar over the replicas (the loss of the whole batch).</summary>
        public static Tensor SumScalar(Tensor value, MpiCommunicator replicas)
        {
            double all = replicas.Allreduce(value.to_type(ScalarType.Float64).item<double>(), ReduceOperation.Sum, "the data-parallel sum of the loss");
            return tensor(all, dtype: ScalarType.Float64).to_type(value.dtype);
        }

        private static void Scatter(Tensor flat, IEnumerable<Parameter> parameters, Action<Parameter, Tensor> apply)
        {
            long offset = 0;
            foreach (var p in parameters)
            {
                long n = p.NumberOfElements;
                apply(p, flat.narrow(0, offset, n).view_as(p));
                offset += n;
            }
        }
    }
}
