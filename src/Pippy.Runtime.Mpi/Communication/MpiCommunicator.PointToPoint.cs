using System;
using Pippy.Runtime.Native;
using MpiU = MPI.Unsafe;

namespace Pippy.Runtime.Communication
{
    internal sealed unsafe partial class MpiCommunicator
    {
        /// <summary>Starts sending <paramref name="bytes"/> bytes at <paramref name="data"/> (MPI_Isend); returns the request to complete.</summary>
        public int PostSend(IntPtr data, int bytes, int destination, int tag)
        {
            CheckPeer(MpiU.MPI_Isend(data, bytes, MpiU.MPI_BYTE, destination, tag, _handle, out int request), "MPI_Isend", destination, tag);
            return request;
        }

        /// <summary>Posts the receive of up to <paramref name="bytes"/> bytes into <paramref name="data"/> (MPI_Irecv); returns the request to complete.</summary>
        public int PostReceive(IntPtr data, int bytes, int source, int tag)
        {
            CheckPeer(MpiU.MPI_Irecv(data, bytes, MpiU.MPI_BYTE, source, tag, _handle, out int request), "MPI_Irecv", source, tag);
            return request;
        }

        /// <summary>Waits for every request (under the watchdog: <see cref="Timeout"/>, then an error naming what was waited for).</summary>
        /// <param name="what">What request k is, for the message.</param>
        /// <param name="why">The likely causes, for the message.</param>
        /// <param name="bell">Where every awaited message's sender rings this rank's doorbell: the waits sleep on it.</param>
        public void WaitAll(int* requests, int count, Func<int, string> what, string why, IWakeSignal? bell = null) => Waits.All(requests, count, Timeout, what, why, bell);

        /// <summary>True when the request has completed (MPI_Test), which also drives MPI's progress; false on an MPI error too.</summary>
        public static bool TryComplete(ref int request) => MpiU.MPI_Test(ref request, out int flag, out _) == 0 && flag != 0;

        /// <summary>Asks MPI to cancel a posted request (MPI_Cancel); it still has to be completed (<see cref="TryComplete"/>).</summary>
        public static void Cancel(ref int request) => MpiU.MPI_Cancel(ref request);

        /// <summary>
        /// The tag scheme of a pipeline step: every message has its own tag, from the value edge, direction and
        /// microbatch; the header and data of one message use the two tags 2k and 2k+1 (<see cref="HeaderTag"/>, <see cref="DataTag"/>).
        /// </summary>
        public static int MessageTag(int edge, bool backward, int microbatch, int microbatches)
        {
            long tag = ((long)edge * 2 + (backward ? 1 : 0)) * microbatches + microbatch;
            if (2 * tag + 1 >= ControlTag)
                throw new InvalidOperationException($"Too many messages per step for MPI's tags ({edge + 1} edges x {microbatches} microbatches, MPI_TAG_UB {TagUpperBound.Value}); use fewer microbatches.");
            return (int)tag;
        }

        /// <summary>The tag of a message's shape header.</summary>
        public static int HeaderTag(int tag) => 2 * tag;

        /// <summary>The tag of a message's memory (or its shared-memory notice).</summary>
        public static int DataTag(int tag) => 2 * tag + 1;

        /// <summary>
        /// The one tag no message of a step uses (MPI_TAG_UB itself): the CUDA IPC path's "ready" notes from a receiver
        /// to its sender (<see cref="Transport.CudaIpcChannel"/>), which carry their message's tag in their contents.
        /// </summary>
        public static int ControlTag => TagUpperBound.Value;

        /// <summary>MPI_TAG_UB, read when the first tag is made (MPI is running by then).</summary>
        private static readonly Lazy<int> TagUpperBound = new(MpiLibrary.TagUpperBound);

        /// <summary>The size of a tensor's memory as one MPI message's count (at most 2 GiB).</summary>
        public static int ByteCount(long bytes) => bytes <= int.MaxValue
            ? (int)bytes
            : throw new NotSupportedException($"A {bytes / (1 << 20)} MiB tensor is larger than one MPI message can carry (2 GiB); use more microbatches.");

        private static void CheckPeer(int code, string call, int peer, int tag)
        {
            if (code != 0) throw new InvalidOperationException($"{call} with rank {peer}, tag {tag} failed with MPI error {code}.");
        }
    }
}
