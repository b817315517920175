using System;
using System.Threading;
using MPI;
using Pippy.Runtime.Native;
using TorchSharp;
using MpiU = MPI.Unsafe;

namespace Pippy.Runtime
{
    /// <summary>
    /// MPI for a pipeline program: binds MPI.NET to MPICH, starts MPI, checks that TorchSharp loads, and makes any
    /// unhandled exception on one rank end the whole job with a message (MPI_Abort) instead of leaving the other
    /// ranks waiting forever. Create one per process with <see cref="Start"/>, first thing in Main.
    /// </summary>
    public sealed class PipelineEnvironment : IDisposable
    {
        private static int _started;
        private readonly MPI.Environment _mpi;
        private bool _disposed;

        private PipelineEnvironment(MPI.Environment mpi)
        {
            _mpi = mpi;
            Rank = Communicator.world.Rank;
            Size = Communicator.world.Size;
        }

        /// <summary>This process's rank in MPI_COMM_WORLD.</summary>
        public int Rank { get; }

        /// <summary>The number of ranks in the job.</summary>
        public int Size { get; }

        /// <summary>Starts MPI (once per process). MPI may remove its own arguments from <paramref name="args"/>.</summary>
        public static PipelineEnvironment Start(ref string[] args)
        {
            if (Interlocked.Exchange(ref _started, 1) == 1)
                throw new InvalidOperationException("PipelineEnvironment.Start was already called in this process; MPI can be started only once.");
            MpiLibrary.Bind();
            var mpi = new MPI.Environment(ref args, Threading.Serialized);
            var environment = new PipelineEnvironment(mpi);
            AppDomain.CurrentDomain.UnhandledException += (_, e) =>
                environment.Abort($"unhandled {e.ExceptionObject.GetType().Name}: {e.ExceptionObject}");
            TorchNative.EnsureLoaded();
            LimitTorchThreads();
            return environment;
        }

        /// <summary>Blocks until every rank reaches this call.</summary>
        public void Barrier() => Communicator.world.Barrier();

        /// <summary>True on every rank when <paramref name="value"/> is true on every rank (a logical-and allreduce).</summary>
        public unsafe bool AllTrue(bool value)
        {
            int mine = value ? 1 : 0, all = 0;
            int code = MpiU.MPI_Allreduce((IntPtr)(&mine), (IntPtr)(&all), 1, MpiU.MPI_INT, MpiU.MPI_LAND, MpiU.MPI_COMM_WORLD);
            if (code != 0) throw new InvalidOperationException($"MPI_Allreduce failed with MPI error {code}.");
            return all != 0;
        }

        /// <summary>Ends every rank of the job: prints <paramref name="message"/> on this rank, then MPI_Abort.</summary>
        public void Abort(string message, int exitCode = 1)
        {
            Console.Out.Flush();
            Console.Error.WriteLine($"[pippy rank {Rank}/{Size}] fatal, ending the whole job: {message}");
            Console.Error.Flush();
            // Give the launcher a moment to forward this rank's output before MPI_Abort tears the job down.
            Thread.Sleep(TimeSpan.FromMilliseconds(300));
            MpiU.MPI_Abort(MpiU.MPI_COMM_WORLD, exitCode);
        }

        /// <summary>
        /// Ranks on one machine share its cores: unless OMP_NUM_THREADS says otherwise, each rank's torch gets its share,
        /// so that N ranks do not run N x cores threads.
        /// </summary>
        private static void LimitTorchThreads()
        {
            if (System.Environment.GetEnvironmentVariable("OMP_NUM_THREADS") is not null) return;
            if (!int.TryParse(System.Environment.GetEnvironmentVariable("MPI_LOCALNRANKS"), out int localRanks) || localRanks < 1) return;
            torch.set_num_threads(Math.Max(1, System.Environment.ProcessorCount / localRanks));
        }

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            _mpi.Dispose();
        }
    }
}
