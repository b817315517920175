using System;
using System.IO;
using System.Linq;
using System.Text;
using Pippy.Runtime.Communication;
using Pippy.Runtime.Native;

namespace Pippy.Runtime.Transport
{
    /// <summary>
    /// Which ranks of a communicator this rank can share memory with (same machine, and each can open the other's
    /// memory files), and their process ids. Found once, collectively: every rank publishes its machine's identity,
    /// its process id and a probe segment, tries to open the probe of every rank on its machine, and the pairs that
    /// both succeeded use <see cref="SharedSlots"/>; all others keep to MPI. The probe then stays as this rank's
    /// <see cref="Transport.Doorbell"/>, and the peers' probes as theirs, which this rank rings when it sends to them.
    /// </summary>
    internal sealed class SharedMemoryPeers : IDisposable
    {
        private readonly bool[] _shared;
        private readonly int[] _pids;
        private readonly SharedSegment? _probe;
        private readonly SharedSegment?[] _peerProbes;
        private readonly Doorbell?[] _peerBells;

        private SharedMemoryPeers(bool[] shared, int[] pids, SharedSegment? probe, SharedSegment?[] peerProbes)
        {
            _shared = shared;
            _pids = pids;
            _probe = probe;
            _peerProbes = peerProbes;
            _peerBells = peerProbes.Select(p => p is null ? null : new Doorbell(p.Address)).ToArray();
            Doorbell = probe is null ? null : new Doorbell(probe.Address);
            Count = shared.Count(s => s);
        }

        /// <summary>This rank's doorbell, which its shared peers ring (null where it shares with no one).</summary>
        public Doorbell? Doorbell { get; }

        /// <summary>Rings the doorbell of <paramref name="rank"/>, a shared peer: a message to it has been posted.</summary>
        public void Ring(int rank) => _peerBells[rank]?.Ring();

        public void Dispose()
        {
            foreach (var segment in _peerProbes) segment?.Dispose();
            _probe?.Dispose();
        }

        /// <summary>Whether messages to and from <paramref name="rank"/> go through shared memory.</summary>
        public bool IsShared(int rank) => _shared[rank];

        /// <summary>The process id of <paramref name="rank"/> (meaningful for shared peers only).</summary>
        public int ProcessId(int rank) => _pids[rank];

        /// <summary>How many other ranks this rank shares memory with.</summary>
        public int Count { get; }

        /// <summary>
        /// Collective over <paramref name="communicator"/>: every rank must call it, willing or not (a rank that is not
        /// willing, or cannot create shared memory, shares with no one, and no one with it).
        /// </summary>
        public static unsafe SharedMemoryPeers Discover(MpiCommunicator communicator, bool willing)
        {
            int rank = communicator.Rank, size = communicator.Size;
            const int Fields = 4;
            SharedSegment? probe = null;
            try
            {
                if (willing) probe = SharedSegment.Create(ProbeBytes, "pippy-probe");
            }
            catch (InvalidOperationException)
            {
                // No memory files here (a sandbox): this rank keeps to MPI.
            }
            var mine = new int[Fields * size];
            var all = new int[Fields * size];
            if (probe is not null)
            {
                mine[Fields * rank] = MachineKey();
                mine[Fields * rank + 1] = Environment.ProcessId;
                mine[Fields * rank + 2] = probe.Descriptor;
                // The probe holds a random number, so that a rank in another process namespace (a container on the
                // same host), where the same process id is another process, is not taken for its peer.
                mine[Fields * rank + 3] = *(int*)probe.Address = Random.Shared.Next(1, int.MaxValue);
            }
            communicator.Allreduce<int>(mine, all, ReduceOperation.Sum, "finding the ranks that share a machine");

            // Row r: which ranks' probes rank r could open.
            var opened = new int[size * size];
            var openedAll = new int[size * size];
            var peerProbes = new SharedSegment?[size];
            for (int peer = 0; peer < size; peer++)
                if (probe is not null && peer != rank && all[Fields * peer] == all[Fields * rank] && (peerProbes[peer] = Opens(all[Fields * peer + 1], all[Fields * peer + 2], all[Fields * peer + 3])) is not null)
                    opened[rank * size + peer] = 1;
            communicator.Allreduce<int>(opened, openedAll, ReduceOperation.Sum, "finding the ranks that share a machine");

            var shared = new bool[size];
            var pids = new int[size];
            for (int peer = 0; peer < size; peer++)
            {
                pids[peer] = all[Fields * peer + 1];
                shared[peer] = openedAll[rank * size + peer] == 1 && openedAll[peer * size + rank] == 1;
                if (!shared[peer])
                {
                    peerProbes[peer]?.Dispose();
                    peerProbes[peer] = null;
                }
            }
            if (!shared.Any(s => s))
            {
                probe?.Dispose();
                probe = null;
            }
            return new SharedMemoryPeers(shared, pids, probe, peerProbes);
        }

        private const int ProbeBytes = 4096;

        /// <summary>The peer's probe, opened, if it holds the peer's token; else null.</summary>
        private static unsafe SharedSegment? Opens(int pid, int descriptor, int token)
        {
            try
            {
                var segment = SharedSegment.Open(pid, descriptor, ProbeBytes);
                if (*(int*)segment.Address == token) return segment;
                segment.Dispose();
                return null;
            }
            catch (InvalidOperationException)
            {
                return null;
            }
        }

        /// <summary>No rank shares memory (shared memory turned off, or a transport without MPI).</summary>
        public static SharedMemoryPeers None(int size) => new(new bool[size], new int[size], null, new SharedSegment?[size]);

        /// <summary>The machine: host name and boot id, hashed (FNV-1a: stable across processes, unlike string hashes).</summary>
        internal static int MachineKey()
        {
            string bootId = File.Exists("/proc/sys/kernel/random/boot_id") ? File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim() : "";
            uint hash = 2166136261;
            foreach (byte b in Encoding.UTF8.GetBytes(Environment.MachineName + "/" + bootId)) hash = (hash ^ b) * 16777619;
            return (int)(hash & 0x3fffffff);
        }
    }
}
