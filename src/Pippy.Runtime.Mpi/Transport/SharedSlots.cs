using System;
using System.Collections.Generic;
using System.Threading;
using Pippy.Runtime.Native;
using static TorchSharp.torch;

namespace Pippy.Runtime.Transport
{
    /// <summary>
    /// Messages between ranks of one machine through shared memory, with one copy: the sender copies the tensor into
    /// a slot (a <see cref="SharedSegment"/> both processes map) and sends MPI only a small notice naming the slot; the
    /// receiver uses the slot's memory in place as the received tensor, and frees the slot when the stage is done with
    /// it (after the microbatch's backward), which the sender sees in the slot's state word. MPI's own path for large
    /// messages here copies with the kernel (cross-memory attach) on the receiver's core, slower than a user-space copy,
    /// and needs both ranks inside MPI to move the data; a slot is filled by the sender alone.
    /// <para>
    /// Slots are per destination and size, taken when free and created when none is (a steady step creates none),
    /// so as many exist as messages of that size are in flight at once.
    /// </para>
    /// </summary>
    internal sealed unsafe class SharedSlots : IDisposable
    {
        /// <summary>The state word lives in the first page; the data starts page aligned after it.</summary>
        private const long DataOffset = 4096;
        private const int Free = 0, InUse = 1;
        private static int s_nextId;

        private readonly Dictionary<(int Destination, long Bytes), List<Slot>> _outgoing = new();
        private readonly Dictionary<(int Source, long Id), Slot> _incoming = new();
        private readonly Dictionary<Tensor, Slot> _lent = new(ReferenceEqualityComparer.Instance);

        /// <summary>Slots this rank created to send from, since the start (a steady step creates none).</summary>
        public int Created { get; private set; }

        /// <summary>
        /// Copies <paramref name="data"/> into a free slot for <paramref name="destination"/> and returns the notice
        /// that tells the receiver where it is: the slot's id, its descriptor and the byte count.
        /// </summary>
        public long[] Write(Tensor data, int destination)
        {
            long bytes = data.NumberOfElements * data.ElementSize;
            if (!_outgoing.TryGetValue((destination, bytes), out var slots)) _outgoing[(destination, bytes)] = slots = new List<Slot>();
            Slot? slot = null;
            foreach (var candidate in slots)
                if (Interlocked.CompareExchange(ref *candidate.State, InUse, Free) == Free) { slot = candidate; break; }
            if (slot is null)
            {
                int id = Interlocked.Increment(ref s_nextId);
                slot = new Slot(SharedSegment.Create(DataOffset + bytes, $"pippy-slot-{id}"), id);
                *slot.State = InUse;
                slots.Add(slot);
                Created++;
            }
            using (no_grad()) slot.ViewAs(data.dtype, data.shape).copy_(data);
            return new[] { slot.Id, slot.Segment.Descriptor, bytes };
        }

        /// <summary>
        /// The tensor a notice from <paramref name="source"/> (process <paramref name="pid"/>) points at, in place. It
        /// is lent to the caller until <see cref="Release"/>; the sender does not touch the slot until then.
        /// </summary>
        public Tensor Read(int source, int pid, ReadOnlySpan<long> notice, TensorSignature layout)
        {
            long id = notice[0], descriptor = notice[1], bytes = notice[2];
            if (!_incoming.TryGetValue((source, id), out var slot))
                _incoming[(source, id)] = slot = new Slot(SharedSegment.Open(pid, (int)descriptor, DataOffset + bytes), id);
            // Only a view so far: nothing is read before the sizes are known to agree.
            var view = slot.ViewAs(layout.DType, layout.Shape);
            if (view.NumberOfElements * view.ElementSize != slot.Segment.Length - DataOffset)
                throw new InvalidOperationException($"Rank {source} filled a shared-memory slot of {slot.Segment.Length - DataOffset} bytes for a {layout} message: both ends must agree on its size.");
            _lent[view] = slot;
            return view;
        }

        /// <summary>Frees the slot behind a tensor from <see cref="Read"/> for its sender; false if the tensor is not one.</summary>
        public bool Release(Tensor tensor)
        {
            if (!_lent.Remove(tensor, out var slot)) return false;
            Volatile.Write(ref *slot.State, Free);
            return true;
        }

        /// <summary>
        /// Waits until every receiver has freed this rank's slots (it may not have opened one yet: a slot's descriptor
        /// must stay open until then), up to <paramref name="timeout"/>, then closes everything.
        /// </summary>
        public void Dispose(TimeSpan timeout)
        {
            long deadline = timeout == Timeout.InfiniteTimeSpan ? long.MaxValue : Environment.TickCount64 + (long)timeout.TotalMilliseconds;
            foreach (var slots in _outgoing.Values)
                foreach (var slot in slots)
                    while (Volatile.Read(ref *slot.State) != Free && Environment.TickCount64 < deadline) Thread.Sleep(1);
            Dispose();
        }

        /// <summary>
        /// After a failed step: closes at once, without waiting for receivers, every slot but those a receiver has not
        /// freed yet, which stay mapped (and their memory files open) until the process exits, since a receiver may
        /// still open or read one. A receiver that is waited for would only free them after messages this rank will
        /// never send.
        /// </summary>
        public void DisposeKeepingUnfreed()
        {
            foreach (var slots in _outgoing.Values)
                foreach (var slot in slots)
                {
                    if (Volatile.Read(ref *slot.State) == Free) slot.Dispose();
                    else lock (s_unfreed) s_unfreed.Add(slot);
                }
            foreach (var slot in _incoming.Values) slot.Dispose();
            _outgoing.Clear();
            _incoming.Clear();
            _lent.Clear();
        }

        /// <summary>Slots left in use by a failed step, kept until the process exits.</summary>
        private static readonly List<Slot> s_unfreed = new();

        public void Dispose()
        {
            foreach (var slots in _outgoing.Values)
                foreach (var slot in slots) slot.Dispose();
            foreach (var slot in _incoming.Values) slot.Dispose();
            _outgoing.Clear();
            _incoming.Clear();
            _lent.Clear();
        }

        private sealed class Slot(SharedSegment segment, long id) : IDisposable
        {
            private Tensor? _view;

            public SharedSegment Segment { get; } = segment;
            public long Id { get; } = id;
            public int* State => (int*)Segment.Address;

            /// <summary>The slot's data as a tensor of this dtype and shape (kept across messages, remade if the layout changes).</summary>
            public Tensor ViewAs(ScalarType dtype, long[] shape)
            {
                if (_view is not null && _view.dtype == dtype && _view.shape.AsSpan().SequenceEqual(shape)) return _view;
                _view?.Dispose();
                // Outside every dispose scope: the slot owns its view across steps.
                _view = TorchNative.Wrap(Segment.Address + (nint)DataOffset, dtype, shape).DetachFromDisposeScope();
                return _view;
            }

            public void Dispose()
            {
                _view?.Dispose();
                _view = null;
                Segment.Dispose();
            }
        }
    }
}
