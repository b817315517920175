using System;
using System.Threading;
using Pippy.Runtime.Communication;
using Pippy.Runtime.Native;
using TorchSharp;

namespace Pippy.Runtime
{
    /// <summary>
    /// What moves MPI messages along while a rank computes. MPI makes progress only inside MPI calls unless a thread
    /// does it. bench/ measures the three (bench/results/latest.md). In the committed report (2 cores, GPipe and 1F1B
    /// at m = 8) the polling thread took the same step time as None (median 319 / 324 ms against 332 / 324 ms) and
    /// MPICH's thread about twice as long (675 / 678 ms: it spins beside the compute). Receives are posted ahead, and a
    /// progress thread takes its time from one of the two ranks' compute. None stays the default: as fast as the best
    /// within the noise, and it needs neither MPI_THREAD_MULTIPLE nor an extra thread.
    /// </summary>
    public enum CommunicationProgress
    {
        /// <summary>Messages move when the rank calls MPI (posting, sending, waiting): no extra thread.</summary>
        None,

        /// <summary>MPICH's own asynchronous progress thread (MPIR_CVAR_ASYNC_PROGRESS=1, with MPI_THREAD_MULTIPLE).</summary>
        MpichThread,

        /// <summary>A thread of Pippy's that enters MPI about once a millisecond (with MPI_THREAD_MULTIPLE).</summary>
        PollingThread,
    }

    /// <summary>
    /// MPI for a pipeline program: binds MPI.NET to MPICH, starts MPI, checks that TorchSharp loads, and makes any
    /// unhandled exception on one rank end the whole job with a message (MPI_Abort) instead of leaving the other
    /// ranks waiting forever. Create one per process with <see cref="Start"/>, first thing in Main.
    /// </summary>
    public sealed class PipelineEnvironment : IDisposable
    {
        private static int _started;
        private readonly IDisposable _mpi;
        private readonly MpiCommunicator _world;
        private bool _disposed;

        /// <summary>How long <see cref="Barrier"/>, <see cref="AllTrue"/> and <see cref="Sum"/> wait for the other ranks before the watchdog ends the job.</summary>
        public static readonly TimeSpan CollectiveTimeout = TimeSpan.FromMinutes(10);

        private PipelineEnvironment(IDisposable mpi)
        {
            _mpi = mpi;
            _world = MpiCommunicator.World(CollectiveTimeout);
            Rank = _world.Rank;
            Size = _world.Size;
        }

        /// <summary>This process's rank in MPI_COMM_WORLD.</summary>
        public int Rank { get; }

        /// <summary>The number of ranks in the job.</summary>
        public int Size { get; }

        /// <summary>The environment variable that chooses <see cref="CommunicationProgress"/> (none, mpich or poll) when Start is not given one.</summary>
        public const string ProgressVariable = "PIPPY_PROGRESS";

        /// <summary>How this process's messages progress while it computes.</summary>
        public CommunicationProgress Progress { get; private set; }

        /// <summary>
        /// Starts MPI (once per process). MPI may remove its own arguments from <paramref name="args"/>.
        /// <paramref name="progress"/> (default: the PIPPY_PROGRESS variable, else <see cref="CommunicationProgress.None"/>)
        /// says whether something drives MPI while this rank computes; see <see cref="CommunicationProgress"/>.
        /// </summary>
        public static PipelineEnvironment Start(ref string[] args, CommunicationProgress? progress = null)
        {
            if (Interlocked.Exchange(ref _started, 1) == 1)
                throw new InvalidOperationException("PipelineEnvironment.Start was already called in this process; MPI can be started only once.");
            // Before anything allocates much: freed tensor memory is kept for reuse (PIPPY_MALLOC; why: MallocTuning).
            MallocTuning.Apply();
            MpiLibrary.Bind();
            var chosen = progress ?? ProgressFromEnvironment();
            // MPICH reads its control variables from the C environment at MPI_Init (.NET's own environment block is not it).
            if (chosen == CommunicationProgress.MpichThread) MpiLibrary.SetNativeEnvironment("MPIR_CVAR_ASYNC_PROGRESS", "1");
            var mpi = MpiCommunicator.StartMpi(ref args, multipleThreads: chosen != CommunicationProgress.None);
            var environment = new PipelineEnvironment(mpi) { Progress = chosen };
            if (chosen == CommunicationProgress.PollingThread) environment.StartPolling();
            // A mistake every rank agreed on (the configuration at Build, a checkpoint's files): said once, then every
            // rank exits. Anything else: one message first (a failed action names its rank, stage, action and
            // microbatch), then the details, and MPI_Abort ends the job.
            AppDomain.CurrentDomain.UnhandledException += (_, e) =>
            {
                if (e.ExceptionObject is Exception agreed && FailureAgreement.ReportedBy(agreed) is int reporter)
                    environment.ExitAfterAgreedFailure(agreed, reporter);
                environment.Abort(e.ExceptionObject is Exception exception
                    ? $"{exception.Message}\n{exception}"
                    : $"unhandled {e.ExceptionObject}");
            };
            TorchNative.EnsureLoaded();
            LimitTorchThreads();
            return environment;
        }

        /// <summary>Blocks until every rank reaches this call (or the watchdog's <see cref="CollectiveTimeout"/> ends the job).</summary>
        public void Barrier() => _world.Barrier("PipelineEnvironment.Barrier");

        /// <summary>True on every rank when <paramref name="value"/> is true on every rank (a logical-and allreduce).</summary>
        public bool AllTrue(bool value) => _world.Allreduce(value ? 1 : 0, ReduceOperation.LogicalAnd, "PipelineEnvironment.AllTrue") != 0;

        /// <summary>The sum of <paramref name="value"/> over every rank, on every rank.</summary>
        public double Sum(double value) => _world.Allreduce(value, ReduceOperation.Sum, "PipelineEnvironment.Sum");

        /// <summary>Ends every rank of the job: prints <paramref name="message"/> on this rank, then MPI_Abort.</summary>
        public void Abort(string message, int exitCode = 1)
        {
            Console.Out.Flush();
            Console.Error.WriteLine($"[pippy rank {Rank}/{Size}] fatal, ending the whole job: {message}");
            Console.Error.Flush();
            // Give the launcher a moment to forward this rank's output before MPI_Abort tears the job down.
            Thread.Sleep(TimeSpan.FromMilliseconds(300));
            MpiCommunicator.AbortJob(exitCode);
        }

        /// <summary>The variable that adds the stack trace to a mistake that every rank agreed on (printed as its message alone otherwise).</summary>
        public const string DebugVariable = "PIPPY_DEBUG";

        /// <summary>The world communicator: every rank of the job.</summary>
        internal MpiCommunicator World => _world;

        /// <summary>
        /// Ends this rank after a failure that every rank reached together (<see cref="FailureAgreement"/>): the rank
        /// that reports it prints its message alone (with the stack trace when PIPPY_DEBUG=1), the others print nothing,
        /// and every rank leaves MPI and exits with code 1.
        /// </summary>
        private void ExitAfterAgreedFailure(Exception failure, int reporter)
        {
            bool debug = System.Environment.GetEnvironmentVariable(DebugVariable) == "1";
            Console.Out.Flush();
            if (Rank == reporter) Console.Error.WriteLine(debug ? $"[pippy] error (rank {Rank}): {failure}" : $"[pippy] error: {failure.Message}");
            Console.Error.Flush();
            // Every rank is here: MPI_Finalize ends the job cleanly. Bounded, in case a rank caught the failure and went on.
            var finalize = new Thread(() => { try { _mpi.Dispose(); } catch (Exception) { } }) { IsBackground = true };
            finalize.Start();
            finalize.Join(TimeSpan.FromSeconds(5));
            System.Environment.Exit(1);
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

        private static CommunicationProgress ProgressFromEnvironment() => System.Environment.GetEnvironmentVariable(ProgressVariable)?.Trim().ToLowerInvariant() switch
        {
            null or "" or "none" => CommunicationProgress.None,
            "mpich" => CommunicationProgress.MpichThread,
            "poll" => CommunicationProgress.PollingThread,
            var other => throw new ArgumentException($"{ProgressVariable}={other}: use none, mpich or poll."),
        };

        private Thread? _poller;
        private volatile bool _polling;

        /// <summary>A background thread that enters MPI about once a millisecond (MPI_Iprobe), which lets MPI move messages along.</summary>
        private void StartPolling()
        {
            _polling = true;
            _poller = new Thread(() =>
            {
                while (_polling)
                {
                    MpiCommunicator.Poke();
                    Thread.Sleep(1);
                }
            }) { IsBackground = true, Name = "pippy MPI progress" };
            _poller.Start();
        }

        /// <summary>How long MPI_Finalize may take once every rank has reached it before the process ends without it.</summary>
        private static readonly TimeSpan FinalizeGrace = TimeSpan.FromSeconds(10);

        /// <summary>
        /// Leaves MPI. Every rank first meets the others here (a barrier under the watchdog), so nothing of the job is
        /// left to do; then MPI_Finalize gets <see cref="FinalizeGrace"/>. With UCX's TCP transport (MPICH 4.0.2, UCX
        /// 1.13.1, Debian 12) it can spin forever closing its endpoints after every rank finished (seen in 5 of 8 jobs
        /// across two hosts; docs/cluster.md): the process then ends with its exit code as it stands, saying so.
        /// </summary>
        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            _polling = false;
            _poller?.Join();
            _world.Barrier("PipelineEnvironment.Dispose (every rank done, before MPI_Finalize)");
            var finalize = new Thread(() => _mpi.Dispose()) { IsBackground = true, Name = "pippy MPI_Finalize" };
            finalize.Start();
            if (finalize.Join(FinalizeGrace)) return;
            Console.Error.WriteLine($"[pippy rank {Rank}/{Size}] MPI_Finalize did not return within {FinalizeGrace.TotalSeconds:0} s after every rank finished " +
                                    "(a known hang of UCX's TCP transport); ending the process without it.");
            Console.Error.Flush();
            System.Environment.Exit(System.Environment.ExitCode);
        }
    }
}
