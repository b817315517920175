using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Runtime.Communication;
using TorchSharp;
using static TorchSharp.torch;

namespace Pippy.Runtime.Transport
{
    /// <summary>
    /// The GPU transport of each pair of ranks, found once at Build, collectively: every rank publishes its machine, whether
    /// it can take part in CUDA IPC (its tensors on the device the runtime serves, the runtime loaded, no override
    /// against it) and the handles of a small probe buffer and event; each tries to open the probes of the ranks on
    /// its machine; then each pair's path is <see cref="GpuTransportChoice.Choose"/> of the same facts on both ends
    /// (opened both ways counts as "IPC works"), so both agree without another message.
    /// </summary>
    internal sealed class CudaIpcPeers
    {
        // Each rank's row: machine, able (0/1), probe memory handle, probe event handle (64 bytes each, as ints: the
        // collectives take ints, and each row is one rank's alone, so the sum is a gather).
        private const int HandleInts = 16;
        private const int Fields = 2 + 2 * HandleInts;

        private CudaIpcPeers((GpuTransport Path, string Reason)[] choices, ICudaIpc? cuda, Exception? mistake)
        {
            Choices = choices;
            Cuda = cuda;
            Mistake = mistake;
        }

        /// <summary>
        /// Where Build gets the CUDA runtime: libcudart (<see cref="Native.CudaRuntime.TryLoad"/>). The CPU tests swap in
        /// a mock here (tests/ParityApp/MockCudaIpc.cs, PIPPY_CUDA_IPC_MOCK=1), since no GPU runs in CI.
        /// </summary>
        internal static Func<ICudaIpc?> Runtime { get; set; } = () => Native.CudaRuntime.TryLoad();

        /// <summary>Per rank, the path to and from it and why (this rank's own entry is <see cref="GpuTransport.NotOnGpu"/>).</summary>
        public IReadOnlyList<(GpuTransport Path, string Reason)> Choices { get; }

        /// <summary>The CUDA runtime, when some pair uses IPC.</summary>
        public ICudaIpc? Cuda { get; }

        /// <summary>An override that cannot be honoured (agree on it across ranks, then throw it).</summary>
        public Exception? Mistake { get; }

        /// <summary>Which ranks this rank uses CUDA IPC with.</summary>
        public bool[] IpcPeers => Choices.Select(c => c.Path == GpuTransport.CudaIpc).ToArray();

        /// <summary>
        /// Collective over <paramref name="communicator"/>: every rank calls it. <paramref name="load"/> gives the CUDA
        /// runtime (called only where the tensors are on a GPU and no override rules IPC out; null: none found).
        /// </summary>
        public static unsafe CudaIpcPeers Discover(MpiCommunicator communicator, Device device, bool mpiCudaAware, string? overrideValue, Func<ICudaIpc?> load, bool learnedShapes = true)
        {
            int rank = communicator.Rank, size = communicator.Size;
            string? forced = string.IsNullOrWhiteSpace(overrideValue) ? null : overrideValue.Trim().ToLowerInvariant();
            ICudaIpc? cuda = null;
            bool onGpu = device.type == DeviceType.CUDA;
            if ((onGpu || forced == "ipc") && forced is not ("host" or "mpi")) cuda = load();
            // The tests' mock serves the CPU: its tensors count as on the device for the choice.
            bool onIpcDevice = cuda is not null ? device.type == cuda.DeviceType : onGpu;
            int index = Math.Max(0, (int)device.index);
            Tensor? probe = null;
            string? failure = null;
            IntPtr probeEvent = IntPtr.Zero;
            var mine = new int[Fields * size];
            var all = new int[Fields * size];
            mine[Fields * rank] = SharedMemoryPeers.MachineKey();
            if (cuda is not null && onIpcDevice)
            {
                try
                {
                    probe = cuda.Allocate(ScalarType.Byte, new long[] { 256 }, index);
                    probeEvent = cuda.CreateEvent(index);
                    Put(cuda.ExportMemory(Native.TorchNative.DataPointer(probe), index).Handle, mine.AsSpan(Fields * rank + 2));
                    Put(cuda.ExportEvent(probeEvent, index), mine.AsSpan(Fields * rank + 2 + HandleInts));
                    mine[Fields * rank + 1] = 1;
                }
                catch (CudaIpcException e)
                {
                    // This rank cannot export: every pair with it stages through the host, and its reason says why.
                    mine[Fields * rank + 1] = 0;
                    failure = e.Message;
                }
            }
            communicator.Allreduce<int>(mine, all, ReduceOperation.Sum, "finding the ranks that can share GPU memory");

            var opened = new int[size * size];
            var openedAll = new int[size * size];
            for (int peer = 0; peer < size; peer++)
            {
                if (peer == rank || mine[Fields * rank + 1] == 0 || all[Fields * peer + 1] == 0 || all[Fields * peer] != all[Fields * rank]) continue;
                if (Opens(cuda!, all.AsSpan(Fields * peer + 2, 2 * HandleInts), index, ref failure)) opened[rank * size + peer] = 1;
            }
            communicator.Allreduce<int>(opened, openedAll, ReduceOperation.Sum, "finding the ranks that can share GPU memory");
            if (probeEvent != IntPtr.Zero) cuda!.DestroyEvent(probeEvent, index);
            if (probe is not null) cuda!.Free(probe, index);

            var choices = new (GpuTransport, string)[size];
            Exception? mistake = null;
            for (int peer = 0; peer < size; peer++)
            {
                if (peer == rank)
                {
                    choices[peer] = (GpuTransport.NotOnGpu, "this rank");
                    continue;
                }
                var inputs = new GpuTransportInputs(onIpcDevice ? DeviceType.CUDA : device.type, mpiCudaAware, all[Fields * peer] == all[Fields * rank],
                    cuda?.Name, openedAll[rank * size + peer] == 1 && openedAll[peer * size + rank] == 1, overrideValue, learnedShapes);
                try
                {
                    choices[peer] = GpuTransportChoice.Choose(inputs);
                    // Where this rank's own export or open failed, the reason also says how.
                    if (choices[peer].Item1 == GpuTransport.HostStaging && failure is not null && inputs.SameHost && !inputs.IpcWorks)
                        choices[peer] = (GpuTransport.HostStaging, $"{choices[peer].Item2}: {failure}");
                }
                catch (Exception e) when (e is InvalidOperationException or ArgumentException)
                {
                    mistake ??= e;
                    choices[peer] = (GpuTransport.HostStaging, e.Message);
                }
            }
            return new CudaIpcPeers(choices, choices.Any(c => c.Item1 == GpuTransport.CudaIpc) ? cuda : null, mistake);
        }

        /// <summary>Whether the peer's probe memory and event open here (and close again).</summary>
        private static bool Opens(ICudaIpc cuda, ReadOnlySpan<int> handles, int device, ref string? failure)
        {
            try
            {
                IntPtr memory = cuda.OpenMemory(Bytes(handles[..HandleInts]), device);
                cuda.CloseMemory(memory, device);
                IntPtr opened = cuda.OpenEvent(Bytes(handles[HandleInts..]), device);
                cuda.DestroyEvent(opened, device);
                return true;
            }
            catch (CudaIpcException e)
            {
                failure ??= e.Message;
                return false;
            }
        }

        /// <summary>
        /// The start-up line of the paths this rank chose ("transport: CUDA IPC (same host, ...)"), grouped when its
        /// peers differ ("transport: CUDA IPC with rank 1 (...); host staging with rank 2 (...)").
        /// </summary>
        public string Describe(int rank)
        {
            var groups = Choices.Select((c, peer) => (c.Path, c.Reason, Peer: peer)).Where(c => c.Peer != rank)
                .GroupBy(c => (c.Path, c.Reason)).ToArray();
            if (groups.Length == 0) return "transport: one rank, no messages";
            if (groups.Length == 1) return $"transport: {GpuTransportChoice.Describe(groups[0].Key.Path)} ({groups[0].Key.Reason})";
            return "transport: " + string.Join("; ", groups.Select(g =>
                $"{GpuTransportChoice.Describe(g.Key.Path)} with rank{(g.Count() > 1 ? "s" : "")} {string.Join(", ", g.Select(c => c.Peer))} ({g.Key.Reason})"));
        }

        private static void Put(byte[] handle, Span<int> into) =>
            System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(handle.AsSpan(0, HandleInts * sizeof(int))).CopyTo(into);

        private static byte[] Bytes(ReadOnlySpan<int> ints) => System.Runtime.InteropServices.MemoryMarshal.AsBytes(ints).ToArray();
    }
}
