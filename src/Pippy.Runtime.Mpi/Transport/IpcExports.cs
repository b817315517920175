using System;
using System.Collections.Generic;
using static TorchSharp.torch;

namespace Pippy.Runtime.Transport
{
    /// <summary>One message of the IPC path: from or to <paramref name="Peer"/>, with its tag, in a learning phase.</summary>
    internal readonly record struct IpcKey(int Peer, int Tag, int Phase)
    {
        public override string ToString() => $"the message with tag {Tag} (phase {Phase}) of rank {Peer}";
    }

    /// <summary>
    /// The receiver's half of the IPC handle cache: one buffer per message (peer, tag, phase), allocated (by libtorch) for its learned
    /// dtype and shape, with its memory handle and "consumed" event exported once and sent to the sender once per
    /// buffer (<see cref="ExportedBuffer.HandlesSent"/>). A new layout for the message makes a new buffer (a new
    /// generation) and frees the old one, at once when it is free, else when it is given back.
    /// <para>
    /// Buffers are per message, not pooled by layout as <see cref="ReceiveBufferPool"/>'s are: the sender writes into
    /// the buffer it has opened for that message, so the buffer must not serve another one.
    /// </para>
    /// </summary>
    internal sealed class IpcExports : IDisposable
    {
        private readonly ICudaIpc _cuda;
        private readonly Dictionary<IpcKey, ExportedBuffer> _buffers = new();
        private readonly Dictionary<Tensor, ExportedBuffer> _lent = new(ReferenceEqualityComparer.Instance);
        private int _nextGeneration;

        public IpcExports(ICudaIpc cuda) => _cuda = cuda;

        /// <summary>Memory handles exported so far (one per buffer: later steps reuse it).</summary>
        public int Exported { get; private set; }

        /// <summary>Buffers freed so far (replaced by a new layout, or at dispose).</summary>
        public int Freed { get; private set; }

        /// <summary>
        /// The buffer of <paramref name="key"/> for <paramref name="layout"/> on device <paramref name="device"/>: the
        /// one it has when the layout is the same, else a new one (the old one freed now, or when given back if lent).
        /// Every call is a new learning of the message (its epoch), which the sender counts alike.
        /// </summary>
        public ExportedBuffer Grant(IpcKey key, TensorSignature layout, int device)
        {
            if (_buffers.TryGetValue(key, out var buffer) && buffer.Layout.SameLayout(layout) && buffer.Device == device)
            {
                buffer.Epoch++;
                return buffer;
            }
            int epoch = buffer?.Epoch + 1 ?? 1;
            if (buffer is not null)
            {
                buffer.Retired = true;
                if (!buffer.Lent) Free(buffer);
            }
            var view = _cuda.Allocate(layout.DType, layout.Shape, device);
            IntPtr consumed = IntPtr.Zero;
            try
            {
                var (handle, offset) = _cuda.ExportMemory(Native.TorchNative.DataPointer(view), device);
                consumed = _cuda.CreateEvent(device);
                byte[] eventHandle = _cuda.ExportEvent(consumed, device);
                Exported++;
                return _buffers[key] = new ExportedBuffer(key, layout, device, view.NumberOfElements * view.ElementSize, handle, offset, consumed, eventHandle, ++_nextGeneration, view) { Epoch = epoch };
            }
            catch
            {
                if (consumed != IntPtr.Zero) _cuda.DestroyEvent(consumed, device);
                _cuda.Free(view, device);
                throw;
            }
        }

        /// <summary>The current buffer of <paramref name="key"/>, or null.</summary>
        public ExportedBuffer? Of(IpcKey key) => _buffers.TryGetValue(key, out var buffer) ? buffer : null;

        /// <summary>Marks the buffer lent to the stage (its tensor is handed out) until <see cref="GiveBack"/>.</summary>
        public Tensor Lend(ExportedBuffer buffer)
        {
            if (buffer.Lent) throw new InvalidOperationException($"The IPC receive buffer of {buffer.Key} is still in use: it was received again before it was given back.");
            buffer.Lent = true;
            _lent[buffer.View] = buffer;
            return buffer.View;
        }

        /// <summary>
        /// Takes back a tensor from <see cref="Lend"/>: its buffer, free again, or null if the tensor is not one (or its
        /// buffer was retired by a new layout, and is freed now).
        /// </summary>
        public ExportedBuffer? GiveBack(Tensor tensor, out bool wasIpc)
        {
            wasIpc = _lent.Remove(tensor, out var buffer);
            if (buffer is null) return null;
            buffer.Lent = false;
            if (!buffer.Retired) return buffer;
            Free(buffer);
            return null;
        }

        private void Free(ExportedBuffer buffer)
        {
            _cuda.DestroyEvent(buffer.Consumed, buffer.Device);
            _cuda.Free(buffer.View, buffer.Device);
            Freed++;
        }

        /// <summary>Frees every buffer (the senders no longer write: every message of the last step was received).</summary>
        public void Dispose()
        {
            foreach (var buffer in _buffers.Values) if (!buffer.Retired) Free(buffer);
            foreach (var buffer in _lent.Values) if (buffer.Retired) Free(buffer);
            _buffers.Clear();
            _lent.Clear();
        }

        /// <summary>After a failed step: forgets every buffer without freeing it, since a sender may still be copying into one.</summary>
        public void Abandon()
        {
            _buffers.Clear();
            _lent.Clear();
        }

    }

    /// <summary>A receive buffer of the IPC path and what the sender needs to write into it.</summary>
    internal sealed class ExportedBuffer(IpcKey key, TensorSignature layout, int device, long bytes, byte[] memoryHandle, long offset, IntPtr consumed, byte[] consumedHandle, int generation, Tensor view)
    {
        public IpcKey Key { get; } = key;
        public TensorSignature Layout { get; } = layout;
        public int Device { get; } = device;
        public long Bytes { get; } = bytes;

        /// <summary>The handle of the allocation that holds the buffer, and where in it the buffer starts.</summary>
        public byte[] MemoryHandle { get; } = memoryHandle;
        public long Offset { get; } = offset;

        /// <summary>Recorded on the receiver's compute stream when the stage gives the buffer back; the sender's copy waits for it.</summary>
        public IntPtr Consumed { get; } = consumed;
        public byte[] ConsumedHandle { get; } = consumedHandle;

        /// <summary>Which buffer of the message this is (a new layout makes a new one): the sender reopens on a new generation.</summary>
        public int Generation { get; } = generation;
        public Tensor View { get; } = view;

        /// <summary>How many times the message has been learned: a sender drops "ready" notes of earlier learnings.</summary>
        public int Epoch { get; set; }
        public bool Lent { get; set; }
        public bool Retired { get; set; }

        /// <summary>Whether the handles went to the sender already (they go once per buffer).</summary>
        public bool HandlesSent { get; set; }
    }
}
