using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Runtime.Native;
using TorchSharp.Modules;
using static TorchSharp.torch;
using MpiU = MPI.Unsafe;

namespace Pippy.Runtime.Execution
{
    /// <summary>
    /// Data parallelism across pipelines: the same stage's ranks of every replica form one communicator. Values start
    /// equal (broadcast from replica 0), and after each step every gradient becomes the sum over the replicas, in one
    /// allreduce per dtype over a flat buffer of all this rank's gradients (not one per parameter).
    /// </summary>
    internal static class DataParallelSync
    {
        public static void BroadcastValues(IReadOnlyList<Parameter> parameters, int communicator, TimeSpan timeout, Transport.DeviceStaging staging)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            foreach (var group in parameters.GroupBy(p => (p.dtype, p.device.ToString())))
            {
                var flat = staging.ForCollective(cat(group.Select(p => p.detach().reshape(-1)).ToArray()));
                Transport.Collectives.Broadcast(TorchNative.DataPointer(flat), checked((int)flat.NumberOfElements), Datatype(flat.dtype), 0, communicator, timeout,
                    "the broadcast of replica 0's parameters to the data-parallel replicas");
                Scatter(flat, group, (p, part) => p.copy_(part));
            }
        }

        public static void SumGradients(IReadOnlyList<Parameter> parameters, int communicator, TimeSpan timeout, Transport.DeviceStaging staging)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            foreach (var group in parameters.GroupBy(p => (p.dtype, p.device.ToString())))
            {
                var flat = staging.ForCollective(cat(group.Select(p => (p.grad ?? zeros_like(p)).reshape(-1)).ToArray()));
                var sum = empty_like(flat);
                Transport.Collectives.Allreduce(TorchNative.DataPointer(flat), TorchNative.DataPointer(sum), checked((int)flat.NumberOfElements), Datatype(flat.dtype), MpiU.MPI_SUM,
                    communicator, timeout, "the data-parallel allreduce of the gradients");
                Scatter(sum, group, (p, part) =>
                {
                    if (p.grad is { } grad) grad.copy_(part);
                    else p.grad = zeros_like(p).copy_(part); // on the parameter's device, wherever the sum was formed
                });
            }
        }

        /// <summary>The sum of a scalar over the replicas (the loss of the whole batch).</summary>
        public static unsafe Tensor SumScalar(Tensor value, int communicator, TimeSpan timeout)
        {
            double mine = value.to_type(ScalarType.Float64).item<double>(), all = 0;
            Transport.Collectives.Allreduce((IntPtr)(&mine), (IntPtr)(&all), 1, MpiU.MPI_DOUBLE, MpiU.MPI_SUM, communicator, timeout, "the data-parallel sum of the loss");
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

        private static int Datatype(ScalarType dtype) => dtype switch
        {
            ScalarType.Float32 => MpiU.MPI_FLOAT,
            ScalarType.Float64 => MpiU.MPI_DOUBLE,
            _ => throw new NotSupportedException($"Data-parallel gradient sums support float32 and float64 parameters, not {dtype}; convert the model to one of them."),
        };

        private static void Check(int code, string call)
        {
            if (code != 0) throw new InvalidOperationException($"{call} failed with MPI error {code}.");
        }
    }
}
