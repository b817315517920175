using System;
using System.Collections.Generic;
using Pippy.Runtime.Communication;
using Pippy.Runtime.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace Pippy.Runtime.Transport
{
    /// <summary>
    /// CUDA tensors between ranks of one machine without a CUDA-aware MPI: the sender copies device to device straight
    /// into the receiver's buffer, which it has mapped through CUDA IPC, and MPI carries only small notes.
    /// <para>
    /// The protocol, per message (peer, tag, phase). The first time, the message goes as any other (header, then the
    /// memory through host staging), its header saying "CUDA IPC from now on". On that header the receiver makes a
    /// buffer for the learned dtype and shape (<see cref="IpcExports"/>), exports its memory handle and an
    /// interprocess "consumed" event once, and sends the sender a ready note (on <see cref="MpiCommunicator.ControlTag"/>,
    /// naming the message, with the handles the first time). From then on the sender, in Send: takes the message's
    /// ready note (normally there long since; else waits for it under the watchdog), maps the buffer once per
    /// generation (<see cref="IpcImports"/>), and on its own non-blocking transfer stream waits for its compute stream
    /// (the tensor is written) and for the receiver's "consumed" event, copies, records its "copied" event, and sends a
    /// notice with that event's handle on the message's data tag. The receiver, in Complete, makes its compute stream
    /// wait for the "copied" event (the host does not wait) and hands the buffer to the stage.
    /// </para>
    /// <para>
    /// Buffer lifetime: a receive buffer is written only by its one sender, and only after a ready note, which the
    /// receiver sends when the buffer is free: at its creation, and when the stage gives it back (Return, after the
    /// microbatch's backward, or after a forward-only pass). "Free" on the host is not yet free on the GPU, where
    /// kernels that read the buffer may still be queued: so Return records "consumed" on the compute stream before the
    /// note, and the sender's copy waits for that event on the GPU. One note allows one copy, so a buffer is never
    /// written twice between two uses, nor while lent. A note made before the message was learned again (a new shape:
    /// the sender sent a header again) is stale and dropped: notes carry the learning's epoch, which both ends count.
    /// A sender waits for a note only across a step (a message's tag occurs once per step), and the receiver gives
    /// every buffer back within the step it got it, so the wait needs nothing the sender has still to send: no
    /// deadlock. The sender keeps its tensor until the copy's event has completed (<see cref="WaitForSends"/>); a new
    /// layout frees the old buffer once it is given back, and the sender closes its mapping on the new generation.
    /// </para>
    /// </summary>
    internal sealed unsafe class CudaIpcChannel : IDisposable
    {
        private const int HandleLongs = 8;

        /// <summary>Ready note: tag, phase, epoch, generation, bytes, handles included (0/1), offset in the allocation, memory handle, "consumed" event handle.</summary>
        internal const int ReadyLength = 7 + 2 * HandleLongs;
        private const int HandlesAt = 7;

        /// <summary>The tag field of the last note a rank sends each IPC peer, at dispose: no ready note follows it.</summary>
        private const long ClosingNote = -1;

        /// <summary>Notice: generation, "copied" event handle.</summary>
        internal const int NoticeLength = 1 + HandleLongs;

        private readonly ICudaIpc _cuda;
        private readonly MpiCommunicator _communicator;
        private readonly bool[] _peers;
        private readonly IpcExports _exports;
        private readonly IpcImports _imports;
        private readonly Dictionary<IpcKey, int> _epochs = new();
        private readonly Dictionary<IpcKey, (int Epoch, int Generation, long Bytes)> _ready = new();
        private readonly Dictionary<int, (int Request, Tensor Note)> _inbox = new();
        private readonly List<(int Request, Tensor Note)> _notes = new();
        private readonly List<(Tensor Data, IntPtr Copied, int Device)> _copies = new();
        private readonly Dictionary<IpcKey, (IntPtr Event, byte[] Handle, int Device)> _copied = new();
        private readonly Dictionary<int, (IntPtr Stream, IntPtr ComputeDone)> _streams = new();
        private readonly HashSet<int> _closedBy = new();
        private bool _closing;

        /// <summary>Memory that a copy may still read after a failed step, kept until the process exits.</summary>
        private static readonly List<Tensor> s_abandoned = new();

        /// <param name="peers">Per rank of the communicator, whether this rank and it use CUDA IPC (both agreed: <see cref="CudaIpcPeers"/>).</param>
        public CudaIpcChannel(ICudaIpc cuda, MpiCommunicator communicator, bool[] peers)
        {
            _cuda = cuda;
            _communicator = communicator;
            _peers = peers;
            _exports = new IpcExports(cuda);
            _imports = new IpcImports(cuda);
        }

        public ICudaIpc Cuda => _cuda;

        /// <summary>Whether messages with <paramref name="rank"/> go through CUDA IPC (for tensors on <see cref="ICudaIpc.DeviceType"/>).</summary>
        public bool With(int rank) => rank >= 0 && rank < _peers.Length && _peers[rank];

        /// <summary>Receive buffers exported (one per message and layout) and receiver buffers mapped and unmapped here.</summary>
        public (int Exported, int Opened, int Closed, int Freed) HandleCounts => (_exports.Exported, _imports.Opened, _imports.Closed, _exports.Freed);

        /// <summary>Sender: the message's header went out saying "CUDA IPC from now on" (a new learning: earlier ready notes are stale).</summary>
        public void Learned(IpcKey key)
        {
            _epochs[key] = _epochs.TryGetValue(key, out int epoch) ? epoch + 1 : 1;
            _ready.Remove(key);
            EnsureInbox(key.Peer);
        }

        /// <summary>Receiver: such a header arrived for a tensor of <paramref name="layout"/> on <paramref name="device"/>; its buffer is made (or kept) and offered.</summary>
        public void Grant(IpcKey key, TensorSignature layout, Device device)
        {
            var buffer = _exports.Grant(key, layout, Index(device));
            if (!buffer.Lent) SendReady(buffer);
        }

        /// <summary>
        /// Sender: copies <paramref name="data"/> into the receiver's buffer of <paramref name="key"/> (after its ready
        /// note) on the transfer stream, and returns the notice to send on the message's data tag. Keeps the tensor until the copy is done.
        /// </summary>
        public long[] Send(IpcKey key, Tensor data)
        {
            int device = Index(data.device);
            var (stream, computeDone) = StreamsOf(device);
            var ready = TakeReady(key, device);
            var target = _imports.Of(key) is { } open && open.Generation == ready.Generation
                ? open
                : throw new InvalidOperationException($"No mapping of rank {key.Peer}'s buffer generation {ready.Generation} for {key}: both ends must agree.");
            long bytes = data.NumberOfElements * data.ElementSize;
            if (bytes != target.Bytes)
                throw new InvalidOperationException($"Rank {key.Peer}'s buffer for {key} holds {target.Bytes} bytes, and the tensor sent has {bytes}: both ends must agree on its shape.");
            _cuda.Record(computeDone, _cuda.ComputeStream, device);
            _cuda.Wait(stream, computeDone, device);
            _cuda.Wait(stream, target.Consumed, device);
            _cuda.Copy(target.Target, TorchNative.DataPointer(data), bytes, stream, device);
            var copied = CopiedEvent(key, device);
            _cuda.Record(copied.Event, stream, device);
            _copies.Add((data.DetachFromDisposeScope(), copied.Event, device));
            var notice = new long[NoticeLength];
            notice[0] = ready.Generation;
            Longs(copied.Handle).CopyTo(notice.AsSpan(1));
            return notice;
        }

        /// <summary>
        /// Receiver: the sender's notice for <paramref name="key"/> arrived; the compute stream waits for its copy, and
        /// the buffer is lent to the caller until <see cref="Release"/>.
        /// </summary>
        public Tensor Accept(IpcKey key, ReadOnlySpan<long> notice)
        {
            var buffer = _exports.Of(key) ?? throw new InvalidOperationException($"Rank {key.Peer} sent a CUDA IPC notice for {key}, for which this rank has no buffer: both ends must agree.");
            if (notice[0] != buffer.Generation)
                throw new InvalidOperationException($"Rank {key.Peer} wrote generation {notice[0]} of the buffer for {key}, whose generation is {buffer.Generation}: both ends must agree.");
            IntPtr copied = _imports.Event(key.Peer, Bytes(notice[1..]), buffer.Device);
            _cuda.Wait(_cuda.ComputeStream, copied, buffer.Device);
            return _exports.Lend(buffer);
        }

        /// <summary>Receiver: the stage is done with <paramref name="tensor"/>; false if it is not a buffer of this path.</summary>
        public bool Release(Tensor tensor)
        {
            var buffer = _exports.GiveBack(tensor, out bool wasIpc);
            if (buffer is null) return wasIpc;
            // Kernels reading it may still be queued: the sender's next copy waits for this on the GPU.
            _cuda.Record(buffer.Consumed, _cuda.ComputeStream, buffer.Device);
            SendReady(buffer);
            return true;
        }

        /// <summary>Waits for the ready notes sent and the copies started (their tensors may then be freed).</summary>
        public void WaitForSends()
        {
            if (_notes.Count > 0)
            {
                int* requests = stackalloc int[_notes.Count];
                for (int i = 0; i < _notes.Count; i++) requests[i] = _notes[i].Request;
                _communicator.WaitAll(requests, _notes.Count, k => $"rank to take the CUDA IPC ready note {k}", "that rank is stuck, has failed, or runs another schedule.");
                foreach (var (_, note) in _notes) note.Dispose();
                _notes.Clear();
            }
            foreach (var (data, copied, device) in _copies)
            {
                _cuda.Synchronize(copied, device);
                data.Dispose();
            }
            _copies.Clear();
        }

        private void SendReady(ExportedBuffer buffer)
        {
            var values = new long[ReadyLength];
            values[0] = buffer.Key.Tag;
            values[1] = buffer.Key.Phase;
            values[2] = buffer.Epoch;
            values[3] = buffer.Generation;
            values[4] = buffer.Bytes;
            if (!buffer.HandlesSent)
            {
                values[5] = 1;
                values[6] = buffer.Offset;
                Longs(buffer.MemoryHandle).CopyTo(values.AsSpan(HandlesAt));
                Longs(buffer.ConsumedHandle).CopyTo(values.AsSpan(HandlesAt + HandleLongs));
                buffer.HandlesSent = true;
            }
            var note = torch.tensor(values, dtype: ScalarType.Int64).DetachFromDisposeScope();
            int request = _communicator.PostSend(TorchNative.DataPointer(note), ReadyLength * sizeof(long), buffer.Key.Peer, MpiCommunicator.ControlTag);
            _notes.Add((request, note));
        }

        /// <summary>The ready note of <paramref name="key"/>'s current learning: taken from those arrived, else waited for.</summary>
        private (int Epoch, int Generation, long Bytes) TakeReady(IpcKey key, int device)
        {
            int epoch = _epochs.TryGetValue(key, out int e) ? e : throw new InvalidOperationException($"{key} was never sent with a header here, so it cannot go through CUDA IPC.");
            var (request, note) = _inbox[key.Peer];
            int* one = stackalloc int[1];
            while (true)
            {
                // Everything that has arrived first, without waiting.
                while (request != 0 && MpiCommunicator.TryComplete(ref request)) request = Dispatch(key.Peer, note, device);
                if (_ready.Remove(key, out var ready) && ready.Epoch == epoch) return ready;
                if (_closedBy.Contains(key.Peer))
                    throw new InvalidOperationException($"Rank {key.Peer} closed its transport while this rank waited for its buffer for {key}: it runs another schedule.");
                one[0] = request;
                _communicator.WaitAll(one, 1, _ => $"rank {key.Peer} to free its buffer for {key} (its CUDA IPC ready note)",
                    "that rank is stuck, has failed, or still holds the buffer (it gives each back when its stage is done with it).");
                request = Dispatch(key.Peer, note, device);
            }
        }

        /// <summary>
        /// Reads an arrived ready note (mapping the buffer when it brings handles) and posts the next receive; returns its
        /// request, or 0 after the peer's closing note (nothing follows it).
        /// </summary>
        private int Dispatch(int peer, Tensor note, int device)
        {
            var values = new ReadOnlySpan<long>((void*)TorchNative.DataPointer(note), ReadyLength);
            if (values[0] == ClosingNote)
            {
                _closedBy.Add(peer);
                _inbox[peer] = (0, note);
                return 0;
            }
            var key = new IpcKey(peer, (int)values[0], (int)values[1]);
            int epoch = (int)values[2], generation = (int)values[3];
            long bytes = values[4];
            bool handles = values[5] == 1;
            // Handles are applied even from a stale note: they come once per buffer (not while closing: nothing is copied any more).
            if (!_closing)
                _imports.Open(key, generation, bytes, values[6], handles ? Bytes(values.Slice(HandlesAt, HandleLongs)) : null, handles ? Bytes(values.Slice(HandlesAt + HandleLongs, HandleLongs)) : null, device);
            if (_epochs.TryGetValue(key, out int current) && epoch == current) _ready[key] = (epoch, generation, bytes);
            int request = _communicator.PostReceive(TorchNative.DataPointer(note), ReadyLength * sizeof(long), peer, MpiCommunicator.ControlTag);
            _inbox[peer] = (request, note);
            return request;
        }

        private void EnsureInbox(int peer)
        {
            if (_inbox.ContainsKey(peer)) return;
            var note = torch.empty(ReadyLength, dtype: ScalarType.Int64).DetachFromDisposeScope();
            _inbox[peer] = (_communicator.PostReceive(TorchNative.DataPointer(note), ReadyLength * sizeof(long), peer, MpiCommunicator.ControlTag), note);
        }

        private (IntPtr Stream, IntPtr ComputeDone) StreamsOf(int device)
        {
            if (_streams.TryGetValue(device, out var streams)) return streams;
            return _streams[device] = (_cuda.CreateStream(device), _cuda.CreateEvent(device));
        }

        private (IntPtr Event, byte[] Handle, int Device) CopiedEvent(IpcKey key, int device)
        {
            if (_copied.TryGetValue(key, out var copied)) return copied;
            IntPtr created = _cuda.CreateEvent(device);
            return _copied[key] = (created, _cuda.ExportEvent(created, device), device);
        }

        /// <summary>The device's index for the runtime (the CPU of the tests' mock has none: 0).</summary>
        private static int Index(Device device) => Math.Max(0, (int)device.index);

        private static long[] Longs(byte[] handle)
        {
            var longs = new long[HandleLongs];
            Buffer.BlockCopy(handle, 0, longs, 0, Math.Min(handle.Length, HandleLongs * sizeof(long)));
            return longs;
        }

        private static byte[] Bytes(ReadOnlySpan<long> longs)
        {
            var bytes = new byte[HandleLongs * sizeof(long)];
            System.Runtime.InteropServices.MemoryMarshal.AsBytes(longs[..HandleLongs]).CopyTo(bytes);
            return bytes;
        }

        /// <summary>Stops listening for ready notes (MPI_Cancel, polled up to <paramref name="grace"/>): a peer may have none left to send.</summary>
        private void CancelInbox(TimeSpan grace)
        {
            long deadline = Environment.TickCount64 + (long)grace.TotalMilliseconds;
            foreach (var (request, note) in _inbox.Values)
            {
                if (request == 0)
                {
                    note.Dispose();
                    continue;
                }
                int r = request;
                MpiCommunicator.Cancel(ref r);
                while (!MpiCommunicator.TryComplete(ref r) && Environment.TickCount64 < deadline) System.Threading.Thread.Yield();
                if (Environment.TickCount64 < deadline) note.Dispose();
                else lock (s_abandoned) s_abandoned.Add(note);
            }
            _inbox.Clear();
        }

        /// <summary>
        /// Closes in step with each IPC peer: the copies done, each sends the other a closing note and takes every note
        /// up to the peer's (so no ready note is left unreceived in MPI, and no buffer is freed while its sender may
        /// still copy into it), then frees and closes everything.
        /// </summary>
        public void Dispose()
        {
            WaitForSends();
            _closing = true;
            for (int peer = 0; peer < _peers.Length; peer++)
            {
                if (!_peers[peer]) continue;
                var values = new long[ReadyLength];
                values[0] = ClosingNote;
                var note = torch.tensor(values, dtype: ScalarType.Int64).DetachFromDisposeScope();
                _notes.Add((_communicator.PostSend(TorchNative.DataPointer(note), ReadyLength * sizeof(long), peer, MpiCommunicator.ControlTag), note));
            }
            int* one = stackalloc int[1];
            for (int peer = 0; peer < _peers.Length; peer++)
            {
                if (!_peers[peer]) continue;
                EnsureInbox(peer);
                while (!_closedBy.Contains(peer))
                {
                    var (request, note) = _inbox[peer];
                    one[0] = request;
                    _communicator.WaitAll(one, 1, _ => $"rank {peer} to close its CUDA IPC channel (its closing note)", "that rank is stuck, has failed, or did not dispose its pipeline.");
                    Dispatch(peer, note, 0);
                }
                _inbox[peer].Note.Dispose();
                _inbox.Remove(peer);
            }
            WaitForSends();
            _imports.Dispose();
            _exports.Dispose();
            foreach (var (cudaEvent, _, device) in _copied.Values) _cuda.DestroyEvent(cudaEvent, device);
            _copied.Clear();
            foreach (var (device, (stream, computeDone)) in _streams)
            {
                _cuda.DestroyEvent(computeDone, device);
                _cuda.DestroyStream(stream, device);
            }
            _streams.Clear();
        }

        /// <summary>
        /// After a failed step: stops listening, and keeps every buffer, mapping and tensor a copy may still touch
        /// until the process exits (nothing is waited for, nothing freed under the GPU).
        /// </summary>
        public void DisposeAfterFailure(TimeSpan grace)
        {
            CancelInbox(grace);
            lock (s_abandoned)
            {
                foreach (var (data, _, _) in _copies) s_abandoned.Add(data);
                foreach (var (_, note) in _notes) s_abandoned.Add(note);
            }
            _copies.Clear();
            _notes.Clear();
            _imports.Abandon();
            _exports.Abandon();
        }
    }
}
