using System;
using MpiU = MPI.Unsafe;

namespace Pippy.Runtime.Communication
{
    /// <summary>
    /// The runtime's one seam to MPI: a communicator and everything the runtime does over it. Point-to-point posts and
    /// completions with the pipeline's tag scheme (MpiCommunicator.PointToPoint.cs), the collectives
    /// (MpiCommunicator.Collectives.cs), and the watchdog under which every wait of them runs (MpiCommunicator.Waits.cs).
    /// Outside Native/, nothing else calls MPI: a new transport or collective starts here.
    /// </summary>
    internal sealed unsafe partial class MpiCommunicator : IDisposable
    {
        private int _handle;
        private readonly bool _owned;

        private MpiCommunicator(int handle, bool owned, TimeSpan timeout)
        {
            _handle = handle;
            _owned = owned;
            Timeout = timeout;
        }

        /// <summary>Every rank of the job (MPI_COMM_WORLD, which is never freed).</summary>
        public static MpiCommunicator World(TimeSpan timeout) => new(MpiU.MPI_COMM_WORLD, owned: false, timeout);

        /// <summary>
        /// A communicator by its MPI handle, not freed by Dispose. Nothing is asked of MPI until it is used, so a test can
        /// make one (handle 0) to check what is refused before any MPI call.
        /// </summary>
        public static MpiCommunicator Borrowed(int handle, TimeSpan timeout) => new(handle, owned: false, timeout);

        /// <summary>This rank's number in the communicator.</summary>
        public int Rank
        {
            get
            {
                Check(MpiU.MPI_Comm_rank(_handle, out int rank), "MPI_Comm_rank", "this rank's number");
                return rank;
            }
        }

        /// <summary>The number of ranks in the communicator.</summary>
        public int Size
        {
            get
            {
                Check(MpiU.MPI_Comm_size(_handle, out int size), "MPI_Comm_size", "the number of ranks");
                return size;
            }
        }

        /// <summary>How long a wait (a message or a collective) may last before the watchdog ends it (infinite: never).</summary>
        public TimeSpan Timeout { get; set; }

        /// <summary>The ranks of this communicator with the same <paramref name="color"/>, numbered by <paramref name="key"/> (MPI_Comm_split).</summary>
        public MpiCommunicator Split(int color, int key, string what)
        {
            Check(MpiU.MPI_Comm_split(_handle, color, key, out int handle), "MPI_Comm_split", $"the {what} communicator");
            return new MpiCommunicator(handle, owned: true, Timeout);
        }

        /// <summary>The same ranks with their own message space (MPI_Comm_dup): its tags never meet this one's.</summary>
        public MpiCommunicator Duplicate(string what)
        {
            Check(MpiU.MPI_Comm_dup(_handle, out int handle), "MPI_Comm_dup", $"the {what} communicator");
            return new MpiCommunicator(handle, owned: true, Timeout);
        }

        /// <summary>
        /// Starts MPI (MPI.NET's environment over MPICH, once per process); disposing the result finalizes it.
        /// <paramref name="multipleThreads"/> asks for MPI_THREAD_MULTIPLE (a progress thread), else MPI_THREAD_SERIALIZED.
        /// </summary>
        public static IDisposable StartMpi(ref string[] args, bool multipleThreads) =>
            new MPI.Environment(ref args, multipleThreads ? MPI.Threading.Multiple : MPI.Threading.Serialized);

        /// <summary>This process's rank in MPI_COMM_WORLD: the number the launcher and the abort message use.</summary>
        public static int WorldRank
        {
            get
            {
                MpiU.MPI_Comm_rank(MpiU.MPI_COMM_WORLD, out int rank);
                return rank;
            }
        }

        /// <summary>Ends every rank of the job (MPI_Abort on MPI_COMM_WORLD).</summary>
        public static void AbortJob(int exitCode) => MpiU.MPI_Abort(MpiU.MPI_COMM_WORLD, exitCode);

        /// <summary>Enters MPI once without waiting (MPI_Iprobe), which lets MPI move messages along: a progress thread's heartbeat.</summary>
        public static void Poke() => MpiU.MPI_Iprobe(MpiU.MPI_ANY_SOURCE, MpiU.MPI_ANY_TAG, MpiU.MPI_COMM_WORLD, out _, out _);

        public void Dispose()
        {
            if (!_owned || _handle == MpiU.MPI_COMM_NULL) return;
            MpiU.MPI_Comm_free(ref _handle);
            _handle = MpiU.MPI_COMM_NULL;
        }

        private static void Check(int code, string call, string what)
        {
            if (code != 0) throw new InvalidOperationException($"{call} ({what}) failed with MPI error {code}.");
        }
    }
}
