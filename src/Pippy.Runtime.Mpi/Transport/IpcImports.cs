using System;
using System.Collections.Generic;
using System.Linq;

namespace Pippy.Runtime.Transport
{
    /// <summary>
    /// The sender's half of the IPC handle cache: each receiver buffer it writes into, opened once
    /// (cudaIpcOpenMemHandle) and kept by message (peer, tag, phase) and generation, with the receiver's "consumed"
    /// event; a new generation (the receiver made a new buffer for a new layout) closes the old mapping first. Also the
    /// receiver's end of the other direction: the senders' "copied" events, opened once per handle.
    /// </summary>
    internal sealed class IpcImports : IDisposable
    {
        private readonly ICudaIpc _cuda;
        private readonly Dictionary<IpcKey, ImportedBuffer> _buffers = new();
        private readonly Dictionary<(int Peer, string Handle), (IntPtr Event, int Device)> _events = new();

        public IpcImports(ICudaIpc cuda) => _cuda = cuda;

        /// <summary>Memory handles opened so far, and closed so far.</summary>
        public int Opened { get; private set; }
        public int Closed { get; private set; }

        /// <summary>
        /// The receiver buffer of <paramref name="key"/>: the one open when <paramref name="generation"/> is the same,
        /// else <paramref name="memoryHandle"/> and <paramref name="eventHandle"/> opened (which must then be given).
        /// </summary>
        public ImportedBuffer Open(IpcKey key, int generation, long bytes, long offset, byte[]? memoryHandle, byte[]? eventHandle, int device)
        {
            if (_buffers.TryGetValue(key, out var open) && open.Generation == generation) return open;
            if (memoryHandle is null || eventHandle is null)
                throw new InvalidOperationException($"Rank {key.Peer} announced buffer generation {generation} for {key} without its IPC handles, and none is open here: both ends must agree.");
            if (open is not null) Close(open);
            IntPtr memory;
            try
            {
                memory = _cuda.OpenMemory(memoryHandle, device);
            }
            catch (CudaIpcException e)
            {
                throw new CudaIpcException(CudaIpcMessages.OpenFailed(key.Peer, key.ToString(), e), e.Code);
            }
            Opened++;
            IntPtr consumed;
            try
            {
                consumed = _cuda.OpenEvent(eventHandle, device);
            }
            catch (CudaIpcException e)
            {
                _cuda.CloseMemory(memory, device);
                Closed++;
                throw new CudaIpcException(CudaIpcMessages.OpenFailed(key.Peer, key.ToString(), e), e.Code);
            }
            return _buffers[key] = new ImportedBuffer(key, generation, bytes, memory, memory + (nint)offset, consumed, device);
        }

        /// <summary>The receiver buffer open for <paramref name="key"/>, or null.</summary>
        public ImportedBuffer? Of(IpcKey key) => _buffers.TryGetValue(key, out var open) ? open : null;

        /// <summary>A sender's event from its handle, opened once per (peer, handle).</summary>
        public IntPtr Event(int peer, byte[] handle, int device)
        {
            var key = (peer, Convert.ToBase64String(handle));
            if (_events.TryGetValue(key, out var opened)) return opened.Event;
            try
            {
                IntPtr cudaEvent = _cuda.OpenEvent(handle, device);
                _events[key] = (cudaEvent, device);
                return cudaEvent;
            }
            catch (CudaIpcException e)
            {
                throw new CudaIpcException($"Rank {peer}'s copy event could not be opened here: {e.Message}", e.Code);
            }
        }

        private void Close(ImportedBuffer open)
        {
            _cuda.DestroyEvent(open.Consumed, open.Device);
            _cuda.CloseMemory(open.Mapping, open.Device);
            Closed++;
            _buffers.Remove(open.Key);
        }

        /// <summary>Closes every mapping and event (the copies into them have completed: the caller synchronized).</summary>
        public void Dispose()
        {
            foreach (var open in _buffers.Values.ToArray()) Close(open);
            foreach (var (cudaEvent, device) in _events.Values) _cuda.DestroyEvent(cudaEvent, device);
            _events.Clear();
        }

        /// <summary>After a failed step: forgets the mappings without closing them, since a copy into one may still run.</summary>
        public void Abandon()
        {
            _buffers.Clear();
            _events.Clear();
        }
    }

    /// <summary>A receiver's buffer as the sender sees it: the allocation mapped here (<paramref name="Mapping"/>), the buffer in it (<paramref name="Target"/>), the receiver's "consumed" event.</summary>
    internal sealed record ImportedBuffer(IpcKey Key, int Generation, long Bytes, IntPtr Mapping, IntPtr Target, IntPtr Consumed, int Device);
}
