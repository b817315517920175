using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Runtime.Native;
using TorchSharp;
using static TorchSharp.torch;
using MpiU = MPI.Unsafe;

namespace Pippy.Runtime.Transport
{
    /// <summary>
    /// Point-to-point tensor messages over MPI. A message is a small header (dtype, rank, shape; or "no tensor",
    /// for a gradient that does not exist) followed by the tensor's own memory, sent with MPI_Isend straight from
    /// the tensor's storage and received with MPI_Irecv straight into a new tensor: no managed copies. A sent tensor
    /// is kept alive until its send completes.
    /// </summary>
    internal sealed unsafe class TensorTransport : IDisposable
    {
        // Header: dtype, number of dimensions (or NoTensor), requires_grad (0/1), then the shape.
        private const int MaxDims = 8;
        private const int HeaderLength = 3 + MaxDims;
        private const long NoTensor = -1;

        private readonly int _communicator;
        private readonly List<(int Request, Tensor Keep)> _pending = new();

        /// <param name="communicator">The MPI communicator (handle) whose ranks and tags the messages use.</param>
        public TensorTransport(int communicator) => _communicator = communicator;

        /// <summary>Starts sending <paramref name="tensor"/> (or "no tensor") to <paramref name="destination"/>; returns at once.</summary>
        public void Send(Tensor? tensor, int destination, int tag)
        {
            var header = torch.full(HeaderLength, NoTensor, dtype: ScalarType.Int64);
            Tensor? data = null;
            if (tensor is not null)
            {
                if (tensor.dim() > MaxDims) throw new NotSupportedException($"Tensors of more than {MaxDims} dimensions cannot be sent (got {tensor.dim()}).");
                data = tensor.detach().contiguous();
                var values = new long[HeaderLength];
                Array.Fill(values, NoTensor);
                values[0] = (long)data.dtype;
                values[1] = data.dim();
                values[2] = tensor.requires_grad ? 1 : 0;
                for (int d = 0; d < data.dim(); d++) values[3 + d] = data.shape[d];
                header = torch.tensor(values, dtype: ScalarType.Int64);
            }
            Start(header, destination, HeaderTag(tag));
            if (data is not null && data.NumberOfElements > 0) Start(data, destination, DataTag(tag));
        }

        /// <summary>
        /// Receives several tensors sent with <see cref="Send"/> at once: all headers are posted with MPI_Irecv and
        /// awaited together, then all data, straight into new tensors. An entry's value is null when its sender had
        /// no tensor; <see cref="ReceivedTensor.RequiresGrad"/> says whether the sender's tensor required a gradient.
        /// </summary>
        public ReceivedTensor[] Receive(IReadOnlyList<(int Source, int Tag)> messages)
        {
            int count = messages.Count;
            var headers = new Tensor[count];
            int* requests = stackalloc int[Math.Max(count, 1)];
            for (int i = 0; i < count; i++)
            {
                headers[i] = torch.empty(HeaderLength, dtype: ScalarType.Int64);
                var (source, tag) = messages[i];
                Check(MpiU.MPI_Irecv(TorchNative.DataPointer(headers[i]), HeaderLength * sizeof(long), MpiU.MPI_BYTE, source, HeaderTag(tag), _communicator, out requests[i]), "MPI_Irecv (header)", source, tag);
            }
            Check(MpiU.MPI_Waitall(count, requests, new MpiU.MPI_Status[count]), "MPI_Waitall (headers)", -1, -1);

            var received = new ReceivedTensor[count];
            int posted = 0;
            for (int i = 0; i < count; i++)
            {
                var values = headers[i].data<long>().ToArray();
                headers[i].Dispose();
                if (values[1] == NoTensor) continue;
                var tensor = torch.empty(values.Skip(3).Take((int)values[1]).ToArray(), dtype: (ScalarType)values[0]);
                received[i] = new ReceivedTensor(tensor, values[2] != 0);
                if (tensor.NumberOfElements == 0) continue;
                var (source, tag) = messages[i];
                Check(MpiU.MPI_Irecv(TorchNative.DataPointer(tensor), ByteCount(tensor), MpiU.MPI_BYTE, source, DataTag(tag), _communicator, out requests[posted++]), "MPI_Irecv (data)", source, tag);
            }
            if (posted > 0) Check(MpiU.MPI_Waitall(posted, requests, new MpiU.MPI_Status[posted]), "MPI_Waitall (data)", -1, -1);
            return received;
        }

        /// <summary>Waits until every started send has completed (its buffer may then be freed).</summary>
        public void WaitForSends()
        {
            if (_pending.Count == 0) return;
            int* requests = stackalloc int[_pending.Count];
            for (int i = 0; i < _pending.Count; i++) requests[i] = _pending[i].Request;
            Check(MpiU.MPI_Waitall(_pending.Count, requests, new MpiU.MPI_Status[_pending.Count]), "MPI_Waitall (sends)", -1, -1);
            foreach (var (_, keep) in _pending) keep.Dispose();
            _pending.Clear();
        }

        /// <summary>
        /// Every message of a pipeline step has its own tag, from the value edge, direction and microbatch; the
        /// header and data of one message use the two tags 2k and 2k+1.
        /// </summary>
        public static int MessageTag(int edge, bool backward, int microbatch, int microbatches)
        {
            long tag = ((long)edge * 2 + (backward ? 1 : 0)) * microbatches + microbatch;
            if (DataTag(tag) > MpiTagUpperBound)
                throw new InvalidOperationException($"Too many messages per step for MPI's tags ({edge + 1} edges x {microbatches} microbatches, MPI_TAG_UB {MpiTagUpperBound}); use fewer microbatches.");
            return (int)tag;
        }

        private static readonly int MpiTagUpperBound = MpiLibrary.TagUpperBound();

        private static int HeaderTag(long tag) => (int)(2 * tag);
        private static int DataTag(long tag) => (int)(2 * tag + 1);

        private void Start(Tensor tensor, int destination, int tag)
        {
            Check(MpiU.MPI_Isend(TorchNative.DataPointer(tensor), ByteCount(tensor), MpiU.MPI_BYTE, destination, tag, _communicator, out int request), "MPI_Isend", destination, tag);
            _pending.Add((request, tensor));
        }

        private static int ByteCount(Tensor tensor)
        {
            long bytes = tensor.NumberOfElements * tensor.ElementSize;
            if (bytes > int.MaxValue)
                throw new NotSupportedException($"A {bytes / (1 << 20)} MiB tensor is larger than one MPI message can carry (2 GiB); use more microbatches.");
            return (int)bytes;
        }

        private static void Check(int code, string call, int peer, int tag)
        {
            if (code != 0) throw new InvalidOperationException($"{call} with rank {peer}, tag {tag} failed with MPI error {code}.");
        }

        public void Dispose() => WaitForSends();
    }

    /// <summary>A received tensor (null when the sender had none) and whether the sender's tensor required a gradient.</summary>
    internal readonly record struct ReceivedTensor(Tensor? Value, bool RequiresGrad);
}
