using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Runtime.Communication;
using Pippy.Runtime.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace Pippy.Runtime.Transport
{
    /// <summary>
    /// Point-to-point tensor messages over MPI, straight from and into tensor memory (no managed copies).
    /// <para>
    /// A message whose shape is not known yet is a small header (dtype, shape, requires-grad flag, or "no tensor")
    /// followed by the tensor's memory. With learning on, both ends remember each message's <see cref="TensorSignature"/>
    /// (by peer, tag and phase: a step's messages have the same tags every step), and from then on the sender sends
    /// only the memory (nothing at all for "no tensor") and the receiver posts the receive into a reused buffer as
    /// early as it likes (<see cref="Post"/>), before the action that needs it. A sender whose tensor no longer matches
    /// what it learned stops with an error (<see cref="SignatureChangedException"/>); <see cref="Forget"/> starts
    /// learning again, which the runner does on both ends when a batch's shapes change.
    /// </para>
    /// <para>
    /// Given the ranks of this machine (<see cref="SharedMemoryPeers"/>), a CPU tensor's memory to one of them goes
    /// through a shared slot (<see cref="SharedSlots"/>) and MPI carries only a notice naming the slot; the header says
    /// which path a message takes, and that is learned with its shape. Given a <see cref="CudaIpcChannel"/>, a CUDA
    /// tensor to a rank it serves goes device to device into the receiver's own buffer from its second time on, and MPI
    /// carries a notice (the protocol and the buffers' lifetime are described there).
    /// </para>
    /// <para>
    /// Longer than most files (the header protocol, the learned fast path and the shared-memory path are one state
    /// machine per message, and splitting them would spread it): after a failed step, TensorTransport.Failure.cs; the
    /// message records, TransportMessages.cs; MPI itself, the communicator seam (Communication/).
    /// </para>
    /// </summary>
    internal sealed unsafe partial class TensorTransport : IDisposable
    {
        // Header: dtype, number of dimensions (or NoTensor), requires_grad (0/1), the path (MessagePath: MPI, shared memory, CUDA IPC), then the shape.
        private const int MaxDims = 8;
        private const int HeaderLength = 4 + MaxDims;
        private const int NoticeLength = 3;
        private const long NoTensor = -1;

        private readonly MpiCommunicator _communicator;
        private readonly bool _learn;
        private readonly List<(int Request, Tensor Sent, Tensor Original, int Destination, int Tag)> _pending = new();
        private readonly Dictionary<(int Peer, int Tag, int Phase), (TensorSignature Signature, MessagePath Path)> _sent = new();
        private readonly Dictionary<(int Peer, int Tag, int Phase), (TensorSignature Signature, MessagePath Path)> _received = new();
        private readonly ReceiveBufferPool _buffers = new();
        private readonly SharedMemoryPeers? _peers;
        private readonly SharedSlots? _slots;
        private readonly CudaIpcChannel? _ipc;

        /// <summary>Receives posted and not completed yet (request handle, the memory it lands in): what a failed step leaves behind.</summary>
        private readonly Dictionary<int, Tensor> _receiving = new();

        /// <summary>
        /// Memory that MPI may still write or read after a failed step gave up on it (a receive whose cancellation did
        /// not complete, a send never taken): kept alive until the process exits, so no finalizer frees it under MPI.
        /// </summary>
        private static readonly List<Tensor> s_abandoned = new();

        /// <param name="communicator">The communicator whose ranks and tags the messages use (its timeout is <see cref="Timeout"/>).</param>
        /// <param name="learn">Learn each message's signature on first use (the pipeline's messages); off for one-off messages.</param>
        /// <param name="staging">How device tensors reach MPI (null: CPU tensors only, or a CUDA-aware MPI).</param>
        /// <param name="sharedMemory">
        /// The ranks on this machine: CPU tensors to and from them go through <see cref="SharedSlots"/> (null: MPI alone).
        /// Only with <paramref name="learn"/>, whose receivers give every buffer back.
        /// </param>
        /// <param name="cudaIpc">The ranks CUDA tensors go to device to device (null: none). Only with <paramref name="learn"/>; disposed with the transport.</param>
        public TensorTransport(MpiCommunicator communicator, bool learn = false, DeviceStaging? staging = null, SharedMemoryPeers? sharedMemory = null, CudaIpcChannel? cudaIpc = null)
        {
            if (cudaIpc is not null && !learn) throw new ArgumentException("CUDA IPC needs learned shapes: its receive buffers are made for them.", nameof(cudaIpc));
            _ipc = cudaIpc;
            _communicator = communicator;
            _learn = learn;
            Staging = staging ?? new DeviceStaging(MpiLibrary.CudaAware());
            if (learn && sharedMemory is { Count: > 0 })
            {
                _peers = sharedMemory;
                _slots = new SharedSlots();
            }
        }

        /// <summary>Whether messages to and from <paramref name="rank"/> go through shared memory.</summary>
        public bool SharesMemoryWith(int rank) => _peers?.IsShared(rank) == true;

        /// <summary>The CUDA IPC path's handle counts: receive buffers exported, receiver buffers mapped and unmapped, buffers freed (zeros without it).</summary>
        public (int Exported, int Opened, int Closed, int Freed) IpcHandleCounts => _ipc?.HandleCounts ?? default;

        /// <summary>Shared-memory slots this rank created to send from (a steady step creates none).</summary>
        public int SharedSlotsCreated => _slots?.Created ?? 0;

        public DeviceStaging Staging { get; }

        /// <summary>How long a wait for messages may last before the watchdog ends it (infinite: never).</summary>
        public TimeSpan Timeout
        {
            get => _communicator.Timeout;
            set => _communicator.Timeout = value;
        }

        /// <summary>Which learned table the next messages use: the same tags mean different things in a training step and in a forward-only pass.</summary>
        public int Phase { get; set; }

        /// <summary>Receive buffers created so far: once shapes are learned, steps reuse them and create none.</summary>
        public int BuffersAllocated => _buffers.Allocated;

        /// <summary>Messages sent with a header (shape not known yet) and without one, since the start.</summary>
        public (int WithHeader, int MemoryOnly) SendCounts => (_withHeader, _memoryOnly);

        private int _withHeader, _memoryOnly;

        /// <summary>
        /// Messages that carried a tensor's memory, and those bytes, by the path the memory took (shared memory or MPI),
        /// since the start. Headers and shared-memory notices are MPI's small control messages and are not counted.
        /// </summary>
        public MessagePathCounts PathCounts => _paths;

        private MessagePathCounts _paths;

        /// <summary>Forgets what was learned in <paramref name="phase"/>: its next messages carry headers again.</summary>
        public void Forget(int phase)
        {
            foreach (var key in _sent.Keys.Where(k => k.Phase == phase).ToArray()) _sent.Remove(key);
            foreach (var key in _received.Keys.Where(k => k.Phase == phase).ToArray()) _received.Remove(key);
        }

        /// <summary>Starts sending <paramref name="tensor"/> (or "no tensor") to <paramref name="destination"/>; returns at once.</summary>
        public void Send(Tensor? tensor, int destination, int tag)
        {
            if (tensor is not null) CheckSendable(tensor);
            var signature = TensorSignature.Of(tensor);
            var key = (destination, tag, Phase);
            if (_learn && _sent.TryGetValue(key, out var known))
            {
                if (!known.Signature.Equals(signature)) throw new SignatureChangedException(known.Signature, signature);
                _memoryOnly++;
                if (tensor is null || tensor.NumberOfElements == 0) return;
                if (known.Path == MessagePath.CudaIpc)
                {
                    if (tensor.device_type != _ipc!.Cuda.DeviceType)
                        throw new InvalidOperationException($"The message with tag {tag} to rank {destination} went device to device (CUDA IPC) in earlier steps, and its tensor is on {tensor.device} now: keep each stage's tensors on one device.");
                    StartIpc(tensor.detach(), destination, tag);
                }
                else StartData(tensor.detach(), destination, DataTag(tag), known.Path);
                return;
            }
            // A CPU tensor to a rank of this machine goes through shared memory, from then on (a later tensor of the
            // same message on another device is copied into the slot from there). A CUDA tensor to a rank of the IPC
            // channel goes through MPI this first time, and device to device from then on.
            var path = SharesMemoryWith(destination) && tensor is { device_type: DeviceType.CPU } ? MessagePath.SharedMemory
                : _ipc?.With(destination) == true && tensor is { NumberOfElements: > 0 } && tensor.device_type == _ipc.Cuda.DeviceType ? MessagePath.CudaIpc
                : MessagePath.Mpi;
            var values = new long[HeaderLength];
            Array.Fill(values, NoTensor);
            Tensor? data = null;
            if (tensor is not null)
            {
                if (tensor.dim() > MaxDims) throw new NotSupportedException($"Tensors of more than {MaxDims} dimensions cannot be sent (got {tensor.dim()}).");
                data = tensor.detach();
                values[0] = (long)data.dtype;
                values[1] = data.dim();
                values[2] = tensor.requires_grad ? 1 : 0;
                values[3] = (long)path;
                for (int d = 0; d < data.dim(); d++) values[4 + d] = data.shape[d];
            }
            var header = torch.tensor(values, dtype: ScalarType.Int64);
            Start(header, header, destination, HeaderTag(tag));
            if (data is not null && data.NumberOfElements > 0) StartData(data, destination, DataTag(tag), path == MessagePath.CudaIpc ? MessagePath.Mpi : path);
            if (_learn) _sent[key] = (signature, path);
            if (path == MessagePath.CudaIpc) _ipc!.Learned(new IpcKey(destination, tag, Phase));
            _withHeader++;
        }

        /// <summary>
        /// The transport sends a tensor's memory as it lies, so it takes only tensors whose memory is one block that MPI
        /// can read: contiguous, on the CPU or a CUDA device. Anything else is a clear error here rather than wrong
        /// bytes on the other rank (the pipeline hands stage outputs over contiguous; see ScheduleInterpreter).
        /// </summary>
        private static void CheckSendable(Tensor tensor)
        {
            if (tensor.device_type is not (DeviceType.CPU or DeviceType.CUDA))
                throw new ArgumentException(
                    $"A {tensor.dtype} [{string.Join(", ", tensor.shape)}] tensor on the {tensor.device} device cannot be sent: MPI reads only CPU memory and, " +
                    "through a CUDA-aware MPI or host staging, CUDA memory. Move it to the CPU or a CUDA device (a meta tensor has no data at all: " +
                    "the stage that made it has parameters without memory).", nameof(tensor));
            if (!tensor.is_contiguous())
                throw new ArgumentException(
                    $"A {tensor.dtype} [{string.Join(", ", tensor.shape)}] tensor that is not contiguous (strides {string.Join(", ", tensor.stride())}) cannot be sent: " +
                    "the transport sends a tensor's memory as it lies. Call contiguous() first.", nameof(tensor));
        }

        /// <summary>
        /// Posts the receive of one message and returns at once; <see cref="Complete"/> waits for it. A learned message
        /// goes straight into a buffer of the pool, on <paramref name="device"/>; an unknown one first receives its header.
        /// </summary>
        public PendingReceive Post(int source, int tag, Device? device = null, string? what = null)
        {
            device ??= CPU;
            what ??= $"the message with tag {tag} from rank {source}";
            var key = (source, tag, Phase);
            if (_learn && _received.TryGetValue(key, out var known))
            {
                var (signature, path) = known;
                if (signature.IsNone || signature.Elements == 0)
                    return new PendingReceive(source, tag, device, signature, null, signature.IsNone ? null : NewBuffer(signature, device), null, Request: 0) { What = what };
                if (path == MessagePath.SharedMemory) return new PendingReceive(source, tag, device, signature, null, null, null, PostNotice(source, tag, NoticeLength, out var notice)) { What = what, Notice = notice };
                if (path == MessagePath.CudaIpc)
                    return new PendingReceive(source, tag, device, signature, null, null, null, PostNotice(source, tag, CudaIpcChannel.NoticeLength, out var ipcNotice)) { What = what, Notice = ipcNotice, ViaCudaIpc = true };
                var buffer = NewBuffer(signature, device);
                var target = Staging.ReceiveTarget(buffer);
                int request = _communicator.PostReceive(TorchNative.DataPointer(target), ByteCount(target), source, DataTag(tag));
                _receiving[request] = target;
                return new PendingReceive(source, tag, device, signature, null, buffer, target, request) { What = what };
            }
            var header = torch.empty(HeaderLength, dtype: ScalarType.Int64).DetachFromDisposeScope();
            int headerRequest = _communicator.PostReceive(TorchNative.DataPointer(header), HeaderLength * sizeof(long), source, HeaderTag(tag));
            _receiving[headerRequest] = header;
            return new PendingReceive(source, tag, device, null, header, null, null, headerRequest) { What = what };
        }

        /// <summary>
        /// Waits for posted receives (all of them together): a learned message is complete when its memory has
        /// arrived; an unknown one when its header has arrived and then its memory, into a buffer of the pool. An
        /// entry's value is null when its sender had no tensor. A received buffer belongs to the caller until it
        /// gives it back with <see cref="Return"/>.
        /// </summary>
        public ReceivedTensor[] Complete(IReadOnlyList<PendingReceive> pending)
        {
            int count = pending.Count;
            int* requests = stackalloc int[Math.Max(count, 1)];
            var waitingFor = new PendingReceive[Math.Max(count, 1)];
            int waiting = 0;
            for (int i = 0; i < count; i++)
                if (pending[i].Request != 0) { waitingFor[waiting] = pending[i]; requests[waiting++] = pending[i].Request; }
            Wait(requests, waiting, k => waitingFor[k].What, BellFor(waitingFor.Take(waiting).Select(p => p.Source)));
            for (int k = 0; k < waiting; k++) _receiving.Remove(waitingFor[k].Request);

            var received = new ReceivedTensor[count];
            var second = new List<int>();
            // What each message turned out to be, once its header said (its data's receive is posted then).
            var resolved = new PendingReceive[count];
            for (int i = 0; i < count; i++)
            {
                var p = resolved[i] = pending[i];
                if (p.Header is null)
                {
                    var known = p.Known!.Value;
                    if (known.IsNone) continue;
                    received[i] = new ReceivedTensor(p.Notice is not null ? FromNotice(p, known) : Land(p.Target, p.Buffer!), known.RequiresGrad);
                    continue;
                }
                var values = p.Header.data<long>().ToArray();
                p.Header.Dispose();
                var signature = values[1] == NoTensor
                    ? TensorSignature.None
                    : TensorSignature.Of((ScalarType)values[0], values[4..(4 + (int)values[1])], values[2] != 0);
                // "No tensor" leaves the path field unset (NoTensor): such a message has no memory to move.
                var path = values[1] == NoTensor ? MessagePath.Mpi : (MessagePath)values[3];
                bool shared = path == MessagePath.SharedMemory;
                if (shared && _slots is null)
                    throw new InvalidOperationException($"Rank {p.Source} sent {p.What} through shared memory, which this rank's transport does not use: both ends must agree.");
                if (path == MessagePath.CudaIpc && (_ipc?.With(p.Source) != true || p.Device.type != _ipc.Cuda.DeviceType))
                    throw new InvalidOperationException($"Rank {p.Source} sent {p.What} through CUDA IPC, which this rank does not use with it (or not for a tensor on {p.Device}): both ends must agree.");
                if (_learn) _received[(p.Source, p.Tag, Phase)] = (signature, path);
                // This first time the memory comes through MPI; the buffer the sender writes into from now on is made and offered now.
                if (path == MessagePath.CudaIpc) _ipc!.Grant(new IpcKey(p.Source, p.Tag, Phase), signature, p.Device);
                if (signature.IsNone) continue;
                if (signature.Elements == 0)
                {
                    received[i] = new ReceivedTensor(NewBuffer(signature, p.Device), signature.RequiresGrad);
                    continue;
                }
                if (shared)
                {
                    requests[second.Count] = PostNotice(p.Source, p.Tag, NoticeLength, out var notice);
                    resolved[i] = p with { Known = signature, Notice = notice };
                }
                else
                {
                    var buffer = NewBuffer(signature, p.Device);
                    var target = Staging.ReceiveTarget(buffer);
                    requests[second.Count] = _communicator.PostReceive(TorchNative.DataPointer(target), ByteCount(target), p.Source, DataTag(p.Tag));
                    _receiving[requests[second.Count]] = target;
                    resolved[i] = p with { Known = signature, Buffer = buffer, Target = target };
                }
                second.Add(i);
            }
            int* secondRequests = stackalloc int[Math.Max(second.Count, 1)];
            for (int k = 0; k < second.Count; k++) secondRequests[k] = requests[k];
            Wait(requests, second.Count, k => resolved[second[k]].What, BellFor(second.Select(i => resolved[i].Source)));
            for (int k = 0; k < second.Count; k++) _receiving.Remove(secondRequests[k]);
            foreach (int i in second)
            {
                var p = resolved[i];
                received[i] = new ReceivedTensor(p.Notice is not null ? FromNotice(p, p.Known!.Value) : Land(p.Target, p.Buffer!), p.Known!.Value.RequiresGrad);
            }
            return received;
        }

        /// <summary>
        /// Whether every posted receive of <paramref name="pending"/> has arrived, without waiting (MPI_Test). Only
        /// learned messages (no header to read first) can be ready; a request found complete is replaced by 0 in the
        /// array, so that <see cref="Complete"/> then takes it without waiting.
        /// </summary>
        public bool TryFinish(PendingReceive[] pending)
        {
            for (int i = 0; i < pending.Length; i++)
            {
                var p = pending[i];
                if (p.Header is not null) return false;
                if (p.Request == 0) continue;
                int request = p.Request;
                if (!MpiCommunicator.TryComplete(ref request)) return false;
                _receiving.Remove(p.Request);
                pending[i] = p with { Request = 0 };
            }
            return true;
        }

        private Tensor Land(Tensor? target, Tensor buffer)
        {
            if (target is not null) Staging.Land(target, buffer);
            return buffer;
        }

        /// <summary>Posts the receive of a notice (which shared slot holds the message, or that a CUDA IPC copy was made) into a small tensor.</summary>
        private int PostNotice(int source, int tag, int length, out Tensor notice)
        {
            notice = torch.empty(length, dtype: ScalarType.Int64).DetachFromDisposeScope();
            int request = _communicator.PostReceive(TorchNative.DataPointer(notice), length * sizeof(long), source, DataTag(tag));
            _receiving[request] = notice;
            return request;
        }

        /// <summary>The tensor a notice stands for: a shared slot's, or this rank's CUDA IPC buffer once the sender's copy is ordered before its use.</summary>
        private Tensor FromNotice(PendingReceive p, TensorSignature signature)
        {
            if (!p.ViaCudaIpc) return FromSlot(p, signature);
            var notice = p.Notice!;
            var buffer = _ipc!.Accept(new IpcKey(p.Source, p.Tag, Phase), new ReadOnlySpan<long>((void*)TorchNative.DataPointer(notice), CudaIpcChannel.NoticeLength));
            notice.Dispose();
            return buffer;
        }

        /// <summary>
        /// The slot a notice names, in place on the CPU; for a stage on another device, a buffer there that the slot
        /// is copied into (and the slot freed at once).
        /// </summary>
        private Tensor FromSlot(PendingReceive p, TensorSignature signature)
        {
            var notice = p.Notice!;
            // Read in place: the notice's three numbers need no managed copy.
            var slot = _slots!.Read(p.Source, _peers!.ProcessId(p.Source), new ReadOnlySpan<long>((void*)TorchNative.DataPointer(notice), NoticeLength), signature);
            notice.Dispose();
            if (p.Device.type == DeviceType.CPU) return slot;
            var buffer = NewBuffer(signature, p.Device);
            buffer.copy_(slot);
            _slots.Release(slot);
            return buffer;
        }

        /// <summary>Receives several messages at once, onto <paramref name="device"/> (the CPU by default): <see cref="Post"/> each, then <see cref="Complete"/>.</summary>
        public ReceivedTensor[] Receive(IReadOnlyList<(int Source, int Tag)> messages, Device? device = null)
        {
            var pending = new PendingReceive[messages.Count];
            for (int i = 0; i < pending.Length; i++) pending[i] = Post(messages[i].Source, messages[i].Tag, device);
            return Complete(pending);
        }

        private void Wait(int* requests, int count, Func<int, string> what, IWakeSignal? bell = null) =>
            _communicator.WaitAll(requests, count, what, "that rank is stuck, has failed, or runs another schedule.", bell);

        /// <summary>This rank's doorbell when every one of <paramref name="sources"/> rings it on sending (all share its memory), else null.</summary>
        private IWakeSignal? BellFor(IEnumerable<int> sources) =>
            _peers?.Doorbell is { } bell && sources.All(_peers.IsShared) ? bell : null;

        /// <summary>A learning transport's buffers come from its pool; a one-off receive gets a new tensor in the caller's dispose scope.</summary>
        private Tensor NewBuffer(TensorSignature signature, Device device) =>
            _learn ? _buffers.Take(signature, device) : empty(signature.Shape, signature.DType, device);

        /// <summary>Gives a received buffer back to the pool, for a later receive of the same dtype and shape.</summary>
        public void Return(Tensor buffer)
        {
            if (_slots?.Release(buffer) == true) return;
            if (_ipc?.Release(buffer) == true) return;
            _buffers.Return(buffer);
        }

        /// <summary>Waits until every started send has completed (its memory may then change or be freed).</summary>
        public void WaitForSends()
        {
            _ipc?.WaitForSends();
            if (_pending.Count == 0) return;
            int* requests = stackalloc int[_pending.Count];
            for (int i = 0; i < _pending.Count; i++) requests[i] = _pending[i].Request;
            Wait(requests, _pending.Count, k => $"pipeline rank {_pending[k].Destination} to receive the message with tag {_pending[k].Tag} sent to it");
            foreach (var (_, sent, original, _, _) in _pending)
            {
                Staging.Release(sent, original);
                if (!ReferenceEquals(sent, original)) original.Dispose();
                else sent.Dispose();
            }
            _pending.Clear();
        }

        private static int HeaderTag(int tag) => MpiCommunicator.HeaderTag(tag);
        private static int DataTag(int tag) => MpiCommunicator.DataTag(tag);

        private void StartData(Tensor data, int destination, int tag, MessagePath path)
        {
            _paths = _paths.Add(path, data.NumberOfElements * data.ElementSize);
            if (path != MessagePath.SharedMemory)
            {
                Start(Staging.ForSend(data), data, destination, tag);
                return;
            }
            var notice = torch.tensor(_slots!.Write(data, destination), dtype: ScalarType.Int64);
            Start(notice, notice, destination, tag);
        }

        /// <summary>A learned CUDA IPC message: the copy into the receiver's buffer, then its notice through MPI.</summary>
        private void StartIpc(Tensor data, int destination, int tag)
        {
            _paths = _paths.Add(MessagePath.CudaIpc, data.NumberOfElements * data.ElementSize);
            var notice = torch.tensor(_ipc!.Send(new IpcKey(destination, tag, Phase), data), dtype: ScalarType.Int64);
            Start(notice, notice, destination, DataTag(tag));
        }

        private void Start(Tensor sent, Tensor original, int destination, int tag)
        {
            // The tensors are owned here until the send completes: out of the caller's dispose scope.
            sent.DetachFromDisposeScope();
            original.DetachFromDisposeScope();
            int request = _communicator.PostSend(TorchNative.DataPointer(sent), ByteCount(sent), destination, tag);
            _pending.Add((request, sent, original, destination, tag));
            // The receiver may sleep on its doorbell until a message comes (after the post, so that it finds it).
            if (SharesMemoryWith(destination)) _peers!.Ring(destination);
        }

        private static int ByteCount(Tensor tensor) => MpiCommunicator.ByteCount(tensor.NumberOfElements * tensor.ElementSize);

        public void Dispose()
        {
            WaitForSends();
            _buffers.Clear();
            _slots?.Dispose(Timeout);
            _ipc?.Dispose();
            Staging.Clear();
        }
    }
}
