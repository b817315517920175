using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Runtime.Execution;
using Pippy.Runtime.Materialization;
using Pippy.Runtime.Transport;
using Pippy.Schedules;
using static TorchSharp.torch;
using MpiU = MPI.Unsafe;

namespace Pippy.Runtime
{
    /// <summary>
    /// This rank's share of a pipeline: its stage and the schedule. Every rank calls the same methods with the same
    /// arguments (SPMD); each rank divides the batch into microbatches and runs its own list of actions. This class
    /// works on tensor arrays; <see cref="PipelineRunner{TOutput}"/> gives it the model's own output type.
    /// </summary>
    public class PipelineRunner : IDisposable
    {
        /// <summary>Set to 0 to keep every message on MPI, also between ranks of one machine (<see cref="PipelineOptions.SharedMemory"/>).</summary>
        public const string SharedMemoryVariable = "PIPPY_SHARED_MEMORY";

        private readonly StageGraph _graph;
        private readonly PipelineOptions _options;
        private readonly TensorTransport _transport;
        private readonly TensorTransport _replicaTransport;
        private readonly ReplicaSync _replicas;
        private readonly GradientReduction _gradients;
        private readonly int _replicaCommunicator;
        private readonly int _pipelineCommunicator;
        private readonly int _dataCommunicator;
        private readonly IReadOnlyList<int> _rankOfStage;
        private bool _awaitingCheckpoint;

        /// <summary>Set when an exception left a Step or Forward: Dispose then waits for nothing the failed step left pending.</summary>
        private bool _failed;

        private protected PipelineRunner(StageGraph graph, ScheduleTable buildTimeSchedule, Func<int, PipelineStage> createStage, PipelineEnvironment environment, PipelineOptions? options,
            IReadOnlyDictionary<string, IReadOnlyList<nn.Module>>? moduleLists = null)
        {
            _options = options ?? new PipelineOptions();
            // The build-time table, unless the options ask for another schedule, stage placement or microbatch count:
            // then the same schedule code computes the table now (and checks the request first).
            if (_options.ScheduleCsv is not null)
            {
                if (_options.Schedule is not null || _options.StagesPerRank is not null || _options.Microbatches is not null)
                    throw new ArgumentException("PipelineOptions.ScheduleCsv is a whole table (its rows place the stages, its microbatch numbers count them): leave Schedule, StagesPerRank and Microbatches unset with it.");
                try
                {
                    buildTimeSchedule = CsvSchedule.Load(_options.ScheduleCsv, "PipelineOptions.ScheduleCsv", graph.Edges.Select(e => (e.FromStage, e.ToStage)).ToArray(), graph.StageCount);
                }
                catch (InvalidScheduleException e)
                {
                    throw new ArgumentException($"{graph.ModelName} cannot run the schedule of PipelineOptions.ScheduleCsv: {e.Message}", e);
                }
            }
            var kind = _options.Schedule ?? buildTimeSchedule.Kind;
            int stagesPerRank = _options.StagesPerRank ?? buildTimeSchedule.StageCount / buildTimeSchedule.RankCount;
            int microbatches = _options.Microbatches ?? buildTimeSchedule.Microbatches;
            int replicas = _options.DataParallel;
            if (replicas < 1) throw new ArgumentOutOfRangeException(nameof(options), replicas, "PipelineOptions.DataParallel must be at least 1.");
            if (stagesPerRank < 1 || graph.StageCount % stagesPerRank != 0)
                throw new ArgumentException($"{graph.ModelName} has {graph.StageCount} stages, which cannot be placed {stagesPerRank} per rank; choose a divisor of {graph.StageCount} for PipelineOptions.StagesPerRank.");
            int pipelineRanks = graph.StageCount / stagesPerRank;
            if (environment.Size != pipelineRanks * replicas)
                throw new InvalidOperationException(
                    $"{graph.ModelName} has {graph.StageCount} stages and runs {stagesPerRank} stage(s) per rank ({kind}), so a pipeline takes {pipelineRanks} rank(s)" +
                    (replicas > 1 ? $", and DataParallel = {replicas} asks for {replicas} pipelines" : "") +
                    $", but this job has {environment.Size} rank(s): start it with mpiexec -n {pipelineRanks * replicas}.");
            CheckOptions(graph, _options);
            bool buildTime = kind == buildTimeSchedule.Kind && stagesPerRank * buildTimeSchedule.RankCount == buildTimeSchedule.StageCount && microbatches == buildTimeSchedule.Microbatches;
            if (kind == ScheduleKind.Custom && !buildTime)
                throw new ArgumentException(
                    $"{graph.ModelName}'s custom schedule is written for {buildTimeSchedule.Microbatches} microbatches on {buildTimeSchedule.RankCount} ranks; " +
                    "leave PipelineOptions.Microbatches, Schedule and StagesPerRank unset or write the table for that count.");
            if (!buildTime && ScheduleBuilder.CheckRequest(kind, graph.StageCount, stagesPerRank, microbatches) is { Count: > 0 } problems)
                throw new ArgumentException($"{graph.ModelName} cannot run {kind} with {stagesPerRank} stage(s) per rank and {microbatches} microbatches: {string.Join("; ", problems)}.");
            Schedule = buildTime ? buildTimeSchedule : ScheduleBuilder.Build(kind, graph.Links(kind, stagesPerRank), microbatches);
            _graph = graph;
            _rankOfStage = Schedule.RankOfStage();
            Environment = environment;

            // Consecutive ranks form a pipeline: rank = replica * (pipeline ranks) + pipeline rank.
            PipelineRanks = Schedule.RankCount;
            PipelineRank = environment.Rank % PipelineRanks;
            DataParallelRank = environment.Rank / PipelineRanks;
            DataParallelSize = replicas;
            _pipelineCommunicator = Split(color: DataParallelRank, key: PipelineRank, "pipeline");
            _dataCommunicator = Split(color: PipelineRank, key: DataParallelRank, "data-parallel");

            var measured = _options.Balance.Measure(moduleLists, graph.ModelName, _options.ReceiveTimeout);
            // Every stage is created here (they share the model's modules; only this rank's are kept), so that every
            // rank can check, before the first step, that all of them built the same model.
            var allStages = PipelineRanges.WithMeasuredCosts(measured, () => Enumerable.Range(0, graph.StageCount).Select(createStage).ToArray());
            Stages = allStages.Where(s => _rankOfStage[s.Index] == PipelineRank).ToArray();
            ModelAgreement.Check(graph.ModelName, ModelAgreement.Describe(allStages), MpiU.MPI_COMM_WORLD, environment.Rank, environment.Size, _options.ReceiveTimeout);
            Materialized = MaterializeStages(graph);
            // PIPPY_STAGE_THROUGH_HOST=1 sends every tensor through host staging buffers, as CUDA tensors go without a
            // CUDA-aware MPI: how the GPU path's staging is tested on machines without a GPU.
            bool throughHost = System.Environment.GetEnvironmentVariable("PIPPY_STAGE_THROUGH_HOST") == "1";
            // Ranks of one machine pass CPU tensors through shared memory (not when testing host staging, which is MPI's path).
            bool sharedMemory = _options.SharedMemory && _options.LearnShapes && !throughHost && System.Environment.GetEnvironmentVariable(SharedMemoryVariable) != "0";
            var peers = SharedMemoryPeers.Discover(_pipelineCommunicator, sharedMemory, _options.ReceiveTimeout);
            _transport = new TensorTransport(_pipelineCommunicator, learn: _options.LearnShapes, new DeviceStaging(Native.MpiLibrary.CudaAware(), throughHost), peers)
            {
                Timeout = _options.ReceiveTimeout,
            };
            if (MpiU.MPI_Comm_dup(_pipelineCommunicator, out _replicaCommunicator) != 0)
                throw new InvalidOperationException("MPI_Comm_dup failed: no communicator for replicated parameters.");
            // The replicated parameters' messages have the same watchdog as the pipeline's.
            _replicaTransport = new TensorTransport(_replicaCommunicator) { Timeout = _options.ReceiveTimeout };
            _replicas = new ReplicaSync(graph, Stages, _rankOfStage, PipelineRank, _replicaTransport);
            _replicas.BroadcastValues();
            if (replicas > 1) DataParallelSync.BroadcastValues(Parameters(), _dataCommunicator, _options.ReceiveTimeout, _transport.Staging);
            _gradients = new GradientReduction(replicas > 1 ? Parameters() : _replicas.Parameters, () =>
            {
                _replicas.SumGradients();
                if (DataParallelSize > 1) DataParallelSync.SumGradients(Parameters(), _dataCommunicator, _options.ReceiveTimeout, _transport.Staging);
            });
            if (_options.PrintPlan && environment.Rank == 0) PrintPlan();
            if (_options.PrintPlan && DataParallelRank == 0)
            {
                // Each rank knows the ranges of its own stages' module lists (divided by parameter count).
                foreach (var stage in Stages)
                    foreach (var (name, module) in stage.named_children())
                        if (module is IStageModuleRange range)
                            Console.WriteLine($"[pippy]   stage {stage.Index} (rank {PipelineRank}): {module}");
            }
        }

        /// <summary>
        /// For a model built on the meta device (<see cref="LazyModel.Construct{T}"/>): gives this rank's stages, and
        /// nothing else, memory and values, before replicated values are broadcast.
        /// </summary>
        private IReadOnlyList<MaterializedTensor> MaterializeStages(StageGraph graph)
        {
            var lazy = Stages.FirstOrDefault(LazyModel.IsLazy);
            if (lazy is null) return Array.Empty<MaterializedTensor>();
            var initialization = _options.Initialization ?? throw new InvalidOperationException(
                $"Stage {lazy.Index} of {graph.ModelName} has parameters without memory (the model was built with LazyModel.Construct, on the meta device), " +
                "but PipelineOptions.Initialization is not set. Set it to WeightInitialization.Seeded(seed) for new weights, FromFile(path) to read them " +
                "from a saved model, or FromCheckpoint() to resume with LoadCheckpoint.");
            var tensors = LazyModel.Materialize(Stages.Select(s => ("", (nn.Module)s)), initialization);
            _awaitingCheckpoint = initialization.AwaitsCheckpoint;
            if (_options.PrintPlan)
                Console.WriteLine($"[pippy]   rank {Environment.Rank} gave memory to {tensors.Count} tensors of stage(s) {string.Join(", ", Stages.Select(s => s.Index))} " +
                                  $"({tensors.Sum(t => t.Tensor.NumberOfElements * t.Tensor.ElementSize) / (1 << 20)} MiB); the other stages stay without memory here");
            return tensors;
        }

        private void ThrowIfAwaitingCheckpoint()
        {
            if (_awaitingCheckpoint)
                throw new InvalidOperationException(
                    "This pipeline was built with WeightInitialization.FromCheckpoint(), so its parameters have no values yet: call LoadCheckpoint before the first Step or Forward.");
        }

        private static int Split(int color, int key, string what)
        {
            if (MpiU.MPI_Comm_split(MpiU.MPI_COMM_WORLD, color, key, out int communicator) != 0)
                throw new InvalidOperationException($"MPI_Comm_split failed: no {what} communicator.");
            return communicator;
        }

        /// <summary>This rank's place in its pipeline (the schedule's rank).</summary>
        public int PipelineRank { get; }

        /// <summary>How many ranks one pipeline takes.</summary>
        public int PipelineRanks { get; }

        /// <summary>Which data-parallel replica (pipeline) this rank belongs to.</summary>
        public int DataParallelRank { get; }

        /// <summary>How many pipelines train side by side (<see cref="PipelineOptions.DataParallel"/>).</summary>
        public int DataParallelSize { get; }

        public PipelineEnvironment Environment { get; }

        /// <summary>How long a collective of this pipeline waits for the other ranks (<see cref="PipelineOptions.ReceiveTimeout"/>).</summary>
        internal TimeSpan CollectiveTimeout => _options.ReceiveTimeout;

        /// <summary>The stages this rank runs, in stage order; their parameters are the model's own.</summary>
        public IReadOnlyList<PipelineStage> Stages { get; }

        /// <summary>
        /// The tensors this rank gave memory to when the model was built lazily (<see cref="LazyModel.Construct{T}"/>):
        /// those of its own stages, each once. Empty for a model built normally.
        /// </summary>
        public IReadOnlyList<MaterializedTensor> Materialized { get; }

        /// <summary>This rank's first stage (its only one, unless the schedule places several per rank).</summary>
        public PipelineStage Stage => Stages[0];

        /// <summary>The table this runner executes.</summary>
        public ScheduleTable Schedule { get; }

        public int Microbatches => Schedule.Microbatches;

        /// <summary>True on the rank that holds the last stage: it computes the loss and returns the output.</summary>
        public bool IsLastStage => _rankOfStage[_graph.StageCount - 1] == PipelineRank;

        /// <summary>What this rank sent in the last <c>Step</c>.</summary>
        public StepStatistics LastStep { get; private set; }

        /// <summary>
        /// Runs forward on a batch, microbatch by microbatch, without gradients. Returns every output of forward
        /// (each merged over the microbatches) on the last stage's rank, and null on the others.
        /// </summary>
        public Tensor[]? ForwardOutputs(params Tensor[] inputs)
        {
            ThrowIfAwaitingCheckpoint();
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var interpreter = Interpreter(Divide(inputs, target: null).Inputs, targets: null, loss: null, phase: ForwardPhase);
            RunOrMarkFailed(() => interpreter.Run(Schedule.ForwardOnly().ActionsOf(PipelineRank)));
            try
            {
                if (!IsLastStage) return null;
                // Copies, so that no output shares memory with a receive buffer that the next call reuses.
                var merged = MergeOutputs(interpreter).Select(o => o.clone()).ToArray();
                foreach (var output in merged) output.MoveToOuterDisposeScope();
                return merged;
            }
            finally
            {
                interpreter.ReleaseBuffers();
            }
        }

        /// <summary>
        /// Forward, loss and backward of one batch on tensor arrays: <paramref name="loss"/> gets each microbatch's
        /// outputs and target. See <see cref="PipelineRunner{TOutput}.Step(Tensor[], Tensor, Func{TOutput, Tensor, Tensor})"/>.
        /// </summary>
        public Tensor StepOutputs(Tensor[] inputs, Tensor target, Func<Tensor[], Tensor, Tensor> loss)
        {
            if (loss is null) throw new ArgumentNullException(nameof(loss));
            if (target is null) throw new ArgumentNullException(nameof(target));
            ThrowIfAwaitingCheckpoint();
            Tensor result = null!;
            RunOrMarkFailed(() => result = RunStep(inputs, target, loss));
            return result;
        }

        /// <summary>
        /// Runs a step's work; an exception that leaves it marks this runner failed, so that <see cref="Dispose"/> (run
        /// while that exception unwinds through the user's <c>using</c>) returns within seconds instead of waiting for
        /// messages and shared-memory slots that the failed step will never see taken.
        /// </summary>
        private void RunOrMarkFailed(Action work)
        {
            try
            {
                work();
            }
            catch
            {
                _failed = true;
                throw;
            }
        }

        private Tensor RunStep(Tensor[] inputs, Tensor target, Func<Tensor[], Tensor, Tensor> loss)
        {
            using var scope = NewDisposeScope();
            var (chunks, targets) = Divide(inputs, target);
            var interpreter = Interpreter(chunks, targets, loss, phase: StepPhase, LossWeights(target, targets!));
            if (_options.TraceDirectory is not null) Environment.Barrier(); // one start for every rank's clock
            int buffersBefore = _transport.BuffersAllocated, slotsBefore = _transport.SharedSlotsCreated;
            var sendsBefore = _transport.SendCounts;
            _gradients.BeforeStep();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            interpreter.Run(Schedule.ActionsOf(PipelineRank));
            double runMs = clock.Elapsed.TotalMilliseconds;
            interpreter.ReleaseBuffers();
            var sends = _transport.SendCounts;
            LastStep = new StepStatistics(interpreter.ActivationsSent, interpreter.GradientsSent, interpreter.Timeline.ToArray())
            {
                ReceiveBuffersAllocated = _transport.BuffersAllocated - buffersBefore,
                SharedSlotsCreated = _transport.SharedSlotsCreated - slotsBefore,
                MessagesWithHeader = sends.WithHeader - sendsBefore.WithHeader,
                MessagesMemoryOnly = sends.MemoryOnly - sendsBefore.MemoryOnly,
                RunMilliseconds = runMs,
                StartTimestamp = interpreter.StartTimestamp,
                HostStagingBuffers = _transport.Staging.Allocated,
                ComputeMilliseconds = ScheduleInterpreter.Meter.Milliseconds(interpreter.Time.ComputeTicks),
                CommunicationMilliseconds = ScheduleInterpreter.Meter.Milliseconds(interpreter.Time.CommunicationTicks),
            };
            if (_options.TraceDirectory is { } directory) WriteTrace(directory, interpreter.Timeline);
            _gradients.AfterStep();
            Tensor? total = IsLastStage ? interpreter.LastStage!.Losses.Select(l => l!.detach()).Aggregate((a, b) => a + b) : null;
            var loss_ = BroadcastFromLastStage(total);
            if (DataParallelSize > 1) loss_ = DataParallelSync.SumScalar(loss_, _dataCommunicator, _options.ReceiveTimeout);
            return loss_.MoveToOuterDisposeScope();
        }

        /// <summary>
        /// The trainable parameters of this rank's stages, each once: give them to a TorchSharp optimizer. Replicated
        /// and tied copies get the same summed gradient on every rank, so the same optimizer keeps them identical.
        /// </summary>
        public IReadOnlyList<TorchSharp.Modules.Parameter> Parameters() =>
            ParameterSet.Distinct(Stages.SelectMany(s => s.parameters()).Where(p => p.requires_grad));

        /// <summary>
        /// Gradient accumulation without the communication of every Step (as DistributedDataParallel's <c>no_sync</c>):
        /// Steps inside <c>using (pipe.NoSync()) { ... }</c> only accumulate this rank's gradients; the next Step outside
        /// it, the last micro-step of the accumulation, sums everything accumulated since the last sum across
        /// data-parallel replicas and replicated or tied copies, in one reduction. Inside it, a replicated parameter's
        /// gradient is this rank's share only, so clip, step the optimizer and save after the Step outside it. Steps
        /// outside it also accumulate correctly (each sums only what it added), at one reduction each.
        /// </summary>
        public IDisposable NoSync() => _gradients.NoSync();

        /// <summary>How many times Steps summed gradients across replicas and copies (a Step inside <see cref="NoSync"/> does not; nor does anything where nothing is replicated).</summary>
        public int GradientReductions => _gradients.Reductions;

        /// <summary>
        /// Global gradient-norm clipping, as <c>clip_grad_norm_</c> on the plain model: the 2-norm over every parameter
        /// of the whole pipeline (squared norms summed across ranks, a replicated parameter counted once), then every
        /// gradient scaled by min(1, maxNorm / (norm + 1e-6)). Call it on every rank after <c>Step</c>; returns the norm.
        /// </summary>
        public unsafe double ClipGradNorm(double maxNorm)
        {
            if (_gradients.Pending)
                throw new InvalidOperationException(
                    "ClipGradNorm was called after Steps inside NoSync(), whose gradients are not summed across replicas and tied copies yet; " +
                    "clip after the Step outside NoSync() that ends the accumulation.");
            var parameters = Parameters();
            double local = 0;
            using (var scope = NewDisposeScope())
            {
                foreach (var p in parameters)
                    if (p.grad is { } grad && !_replicas.IsSecondaryCopy(p)) local += grad.to_type(ScalarType.Float64).square().sum().item<double>();
            }
            double total = 0;
            // Data-parallel replicas hold the same (summed) gradients, so the norm is one pipeline's.
            Collectives.Allreduce((IntPtr)(&local), (IntPtr)(&total), 1, MpiU.MPI_DOUBLE, MpiU.MPI_SUM, _pipelineCommunicator, _options.ReceiveTimeout,
                "the gradient-norm allreduce of ClipGradNorm");
            double norm = Math.Sqrt(total);
            double coefficient = Math.Min(1.0, maxNorm / (norm + 1e-6));
            using (no_grad())
            {
                foreach (var p in parameters) p.grad?.mul_(coefficient);
            }
            return norm;
        }

        /// <summary>
        /// Frees, on this rank, the memory of every parameter and buffer of <paramref name="model"/> that this rank's
        /// stages do not hold (the other ranks' stages), so each rank keeps only its share of the model. Call it after
        /// <c>Build</c>; afterwards the model itself can no longer run here (its other parts are disposed), only the
        /// pipeline. Returns the number of bytes released. The peak is still the whole model, since every rank built
        /// it first; a model built with <see cref="LazyModel.Construct{T}"/> never gives the other stages memory.
        /// </summary>
        public long ReleaseOtherStages(nn.Module model)
        {
            var kept = new HashSet<IntPtr>(Stages.SelectMany(s => s.parameters().Cast<Tensor>().Concat(s.buffers())).Select(Native.TorchNative.DataPointer));
            var others = model.parameters().Cast<Tensor>().Concat(model.buffers())
                .Where(t => !t.is_meta)
                .Select(t => (Tensor: t, Pointer: Native.TorchNative.DataPointer(t)))
                .Where(x => !kept.Contains(x.Pointer))
                .ToList();
            long bytes = others.GroupBy(x => x.Pointer).Sum(g => g.First().Tensor.NumberOfElements * g.First().Tensor.ElementSize);
            foreach (var (tensor, _) in others.Where(x => !x.Tensor.IsInvalid)) tensor.Dispose();
            return bytes;
        }

        /// <summary>
        /// Saves a checkpoint in <paramref name="directory"/> (every rank calls it): each rank's stages, the optimizer's
        /// state, <paramref name="step"/> and the RNG state, with an index, each file written atomically.
        /// </summary>
        public void SaveCheckpoint(string directory, TorchSharp.Modules.OptimizerHelper? optimizer = null, long step = 0) =>
            Checkpoints.PipelineCheckpoint.Save(directory, this, _graph, optimizer, step);

        /// <summary>Restores a checkpoint saved by <see cref="SaveCheckpoint"/> (every rank calls it); returns its step.</summary>
        public long LoadCheckpoint(string directory, TorchSharp.Modules.OptimizerHelper? optimizer = null)
        {
            long step = Checkpoints.PipelineCheckpoint.Load(directory, this, _graph, optimizer);
            _awaitingCheckpoint = false;
            return step;
        }

        /// <summary>For <see cref="LossReduction.Mean"/>: each microbatch's share of the target's rows (1/m each when it is replicated).</summary>
        private double[]? LossWeights(Tensor target, Tensor[] parts)
        {
            if (_options.LossReduction == LossReduction.Sum) return null;
            // A custom division is weighed by its parts' rows (dimension 0).
            if (_options.Target.IsCustom && target.dim() > 0) return parts.Select(p => (double)p.shape[0] / target.shape[0]).ToArray();
            if (_options.Target.Dimension is not int dimension) return Enumerable.Repeat(1.0 / parts.Length, parts.Length).ToArray();
            int dim = dimension < 0 ? dimension + (int)target.dim() : dimension;
            return parts.Select(p => (double)p.shape[dim] / target.shape[dim]).ToArray();
        }

        private const int StepPhase = 0, ForwardPhase = 1;
        private readonly string?[] _shapesOfPhase = new string?[2];

        /// <summary>
        /// Divides the inputs (and the target) into this rank's microbatches: first this replica's share when there are
        /// data-parallel replicas, then the microbatches, each value as its spec says (a custom spec given to several
        /// values divides them together, the target last).
        /// </summary>
        private (Tensor[][] Inputs, Tensor[]? Targets) Divide(Tensor[] inputs, Tensor? target)
        {
            if (inputs is null || inputs.Length != _graph.ModelInputs.Count)
                throw new ArgumentException(
                    $"{_graph.ModelName}.forward takes {_graph.ModelInputs.Count} input(s) ({string.Join(", ", _graph.ModelInputs)}) but {inputs?.Length ?? 0} were given.",
                    nameof(inputs));
            var values = inputs.Select((t, i) => (What: $"Input '{_graph.ModelInputs[i]}'", Value: t, Spec: InputSpec(_graph.ModelInputs[i]))).ToList();
            if (target is not null) values.Add(("The target", target, _options.Target));
            if (DataParallelSize > 1)
            {
                var shares = Microbatching.Divide(values, DataParallelSize, "data-parallel replicas");
                values = values.Select((v, i) => (v.What, shares[i][DataParallelRank], v.Spec)).ToList();
            }
            var parts = Microbatching.Divide(values, Microbatches);
            return (parts.Take(inputs.Length).ToArray(), target is null ? null : parts[inputs.Length]);
        }

        private ScheduleInterpreter Interpreter(Tensor[][] chunks, Tensor[]? targets, Func<Tensor[], Tensor, Tensor>? loss, int phase, double[]? lossWeights = null)
        {
            // The messages' shapes follow from the microbatches' shapes, which every rank of the pipeline computes
            // alike: when they change, every rank forgets what it learned, and the step sends headers again.
            string shapes = string.Join(";", chunks.SelectMany(c => c).Select(t => $"{t.dtype}[{string.Join(",", t.shape)}]"));
            if (_shapesOfPhase[phase] != shapes)
            {
                if (_shapesOfPhase[phase] is not null) _transport.Forget(phase);
                _shapesOfPhase[phase] = shapes;
            }
            _transport.Phase = phase;
            return new ScheduleInterpreter(Stages, _graph, _rankOfStage, PipelineRank, _transport, Microbatches, chunks, targets, loss, lossWeights);
        }

        private MicrobatchSpec InputSpec(string name) => _options.Inputs.TryGetValue(name, out var spec) ? spec : MicrobatchSpec.Split(0);

        private Tensor[] MergeOutputs(ScheduleInterpreter interpreter) =>
            Enumerable.Range(0, _graph.OutputCount)
                .Select(k => (k < _options.Outputs.Count ? _options.Outputs[k] : OutputMerge.Concat(0))
                    .Merge(interpreter.LastStage!.LastOutputs.Select(o => o![k]).ToArray()))
                .ToArray();

        /// <summary>
        /// Writes the last <c>Step</c>'s measured actions of every rank of the job into one Chrome-trace file (open it in
        /// ui.perfetto.dev or chrome://tracing): a track per rank, an event per action (a receive's event is its wait).
        /// Every rank calls it; rank 0 gathers the timelines over MPI and writes the file atomically.
        /// </summary>
        public unsafe void WriteTrace(string path)
        {
            // The first line is when the rank started its actions: ranks on one machine share the monotonic clock, so
            // the tracks line up (ranks on other machines are aligned to their own start).
            var mine = System.Text.Encoding.UTF8.GetBytes(string.Join("\n", LastStep.Timeline.Select(t =>
                FormattableString.Invariant($"{t.Action}\t{t.Start:R}\t{t.End:R}")).Prepend(FormattableString.Invariant($"start\t{LastStep.StartTimestamp}\t{System.Net.Dns.GetHostName()}"))));
            int size = Environment.Size, length = mine.Length;
            var lengths = new int[size];
            var offsets = new int[size];
            // Non-blocking collectives polled with the watchdog's deadline, like every other wait of the pipeline.
            fixed (int* counts = lengths)
                Collectives.Gather((IntPtr)(&length), 1, MpiU.MPI_INT, (IntPtr)counts, 0, MpiU.MPI_COMM_WORLD, _options.ReceiveTimeout, "the gather of the trace sizes of WriteTrace");
            for (int r = 1; r < size; r++) offsets[r] = offsets[r - 1] + lengths[r - 1];
            var all = new byte[Math.Max(1, offsets[size - 1] + lengths[size - 1])];
            fixed (byte* send = mine.Length == 0 ? new byte[1] : mine, receive = all)
                Collectives.Gatherv((IntPtr)send, length, MpiU.MPI_BYTE, (IntPtr)receive, lengths, offsets, 0, MpiU.MPI_COMM_WORLD, _options.ReceiveTimeout, "the gather of the traces of WriteTrace");
            if (Environment.Rank != 0) return;
            var timeline = new List<TimedAction>();
            var texts = Enumerable.Range(0, size).Select(r => System.Text.Encoding.UTF8.GetString(all, offsets[r], lengths[r]).Split('\n', StringSplitOptions.RemoveEmptyEntries)).ToArray();
            var starts = texts.Select(lines => lines[0].Split('\t')).Select(p => (Ticks: long.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture), Host: p[2])).ToArray();
            for (int r = 0; r < size; r++)
            {
                long earliest = starts.Where(s => s.Host == starts[r].Host).Min(s => s.Ticks);
                double offset = (starts[r].Ticks - earliest) * 1000.0 / System.Diagnostics.Stopwatch.Frequency;
                foreach (var line in texts[r].Skip(1))
                {
                    var parts = line.Split('\t');
                    timeline.Add(new TimedAction(r, PipelineAction.Parse(parts[0]),
                        offset + double.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture), offset + double.Parse(parts[2], System.Globalization.CultureInfo.InvariantCulture)));
                }
            }
            string? folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
            if (folder is not null) System.IO.Directory.CreateDirectory(folder);
            System.IO.File.WriteAllText(path + ".tmp", ScheduleDiagram.ChromeTrace(timeline, unitMicroseconds: 1000));
            System.IO.File.Move(path + ".tmp", path, overwrite: true);
        }

        /// <summary>This rank's measured action times as a Chrome trace, written atomically (temporary file, then rename).</summary>
        private void WriteTrace(string directory, IReadOnlyList<TimedAction> timeline)
        {
            System.IO.Directory.CreateDirectory(directory);
            string path = System.IO.Path.Combine(directory, $"pippy-trace-rank{Environment.Rank}.json");
            System.IO.File.WriteAllText(path + ".tmp", ScheduleDiagram.ChromeTrace(timeline, unitMicroseconds: 1000));
            System.IO.File.Move(path + ".tmp", path, overwrite: true);
        }

        private static void CheckOptions(StageGraph graph, PipelineOptions options)
        {
            var unknown = options.Inputs.Keys.Where(k => !graph.ModelInputs.Contains(k)).ToArray();
            if (unknown.Length > 0)
                throw new ArgumentException(
                    $"PipelineOptions.Inputs names {string.Join(", ", unknown.Select(u => $"'{u}'"))}, but {graph.ModelName}.forward takes {string.Join(", ", graph.ModelInputs.Select(i => $"'{i}'"))}.");
            if (options.Outputs.Count > graph.OutputCount)
                throw new ArgumentException($"PipelineOptions.Outputs has {options.Outputs.Count} entries, but {graph.ModelName}.forward returns {graph.OutputCount} value(s).");
        }

        private void PrintPlan()
        {
            Console.WriteLine($"[pippy] {_graph.ModelName}: {_graph.StageCount} stages on {PipelineRanks} ranks, {Schedule.Kind}, {Microbatches} microbatches");
            if (DataParallelSize > 1)
                Console.WriteLine($"[pippy]   {Environment.Size} ranks = {DataParallelSize} data-parallel replicas x {PipelineRanks} pipeline ranks: " +
                    string.Join("; ", Enumerable.Range(0, DataParallelSize).Select(d => $"replica {d} on ranks {d * PipelineRanks}-{d * PipelineRanks + PipelineRanks - 1}")) +
                    "; gradients summed across replicas in one bucketed allreduce per step");
            foreach (var spec in _graph.Stages)
                Console.WriteLine($"[pippy]   stage {spec.Index} (rank {_rankOfStage[spec.Index]}): {string.Join(", ", spec.Modules)}; in: {string.Join(", ", spec.Inputs)}; out: {string.Join(", ", spec.Outputs)}");
            foreach (var group in _graph.Replicated)
                Console.WriteLine($"[pippy]   replicated {group}: broadcast from the lowest stage, gradients summed after each step");
        }

        /// <summary>The last stage's loss on every rank, with its dtype.</summary>
        private unsafe Tensor BroadcastFromLastStage(Tensor? value)
        {
            double* message = stackalloc double[2];
            if (value is not null)
            {
                message[0] = value.to_type(ScalarType.Float64).item<double>();
                message[1] = (double)value.dtype;
            }
            Collectives.Broadcast((IntPtr)message, 2, MpiU.MPI_DOUBLE, _rankOfStage[_graph.StageCount - 1], _pipelineCommunicator, _options.ReceiveTimeout,
                "the broadcast of the step's loss");
            return value ?? tensor(message[0], dtype: ScalarType.Float64).to_type((ScalarType)(int)message[1]);
        }

        /// <summary>How long Dispose after a failed step waits for MPI to cancel the receives it had posted.</summary>
        private static readonly TimeSpan FailureGrace = TimeSpan.FromSeconds(2);

        /// <summary>
        /// Frees the transport, communicators and stages. After a Step or Forward that threw (this rank failed: an
        /// exception in a stage, the loss or a backward, or the watchdog), it waits for nothing the failed step left
        /// behind: posted receives are cancelled, unfinished sends and unfreed shared-memory slots are left to the
        /// process's end with their memory kept alive, so it returns within seconds (docs/reliability.md). The job
        /// still has to end: an exception that escapes Main aborts every rank; a rank that catches it may exit, and
        /// the ranks waiting for it are ended by their watchdog (<see cref="PipelineOptions.ReceiveTimeout"/>).
        /// </summary>
        public void Dispose()
        {
            if (_failed)
            {
                _transport.DisposeAfterFailure(FailureGrace);
                _replicaTransport.DisposeAfterFailure(FailureGrace);
            }
            else
            {
                _transport.Dispose();
                _replicaTransport.Dispose();
            }
            foreach (int handle in new[] { _replicaCommunicator, _pipelineCommunicator, _dataCommunicator })
            {
                int communicator = handle;
                MpiU.MPI_Comm_free(ref communicator);
            }
            foreach (var stage in Stages) stage.Dispose();
        }
    }

    /// <summary>What one rank did in one step: messages sent, and each action's measured start and end (milliseconds).</summary>
    public readonly record struct StepStatistics(int ActivationsSent, int GradientsSent, IReadOnlyList<TimedAction> Timeline)
    {
        /// <summary>Receive buffers this step had to create (none once the shapes are learned: buffers are reused).</summary>
        public int ReceiveBuffersAllocated { get; init; }

        /// <summary>Shared-memory slots this step had to create to send from (none once every message size has enough slots in flight).</summary>
        public int SharedSlotsCreated { get; init; }

        /// <summary>Messages sent with a shape header (the first step, or after the batch's shapes changed).</summary>
        public int MessagesWithHeader { get; init; }

        /// <summary>Messages sent as the tensor's memory alone, into a receive posted in advance.</summary>
        public int MessagesMemoryOnly { get; init; }

        /// <summary>Host staging buffers created so far (for device tensors without a CUDA-aware MPI).</summary>
        public int HostStagingBuffers { get; init; }

        /// <summary>When this rank's action list started: Stopwatch ticks of the machine's monotonic clock, which its processes share.</summary>
        public long StartTimestamp { get; init; }

        /// <summary>How long this rank's action list took, in milliseconds.</summary>
        public double RunMilliseconds { get; init; }

        /// <summary>Of that, the time inside torch: the stages' forward, the loss and autograd.</summary>
        public double ComputeMilliseconds { get; init; }

        /// <summary>Of that, the time inside the transport: posting, sending and waiting for messages.</summary>
        public double CommunicationMilliseconds { get; init; }

        /// <summary>The rest, per action: what the runtime itself costs (bookkeeping between torch and MPI).</summary>
        public double OverheadMicrosecondsPerAction =>
            Timeline.Count == 0 ? 0 : (RunMilliseconds - ComputeMilliseconds - CommunicationMilliseconds) * 1000 / Timeline.Count;
    }

    /// <summary>
    /// A pipeline runner typed by the model's output: <see cref="Tensor"/>, or a tuple of tensors.
    /// Created by the generated <c>Pipeline.Build</c>.
    /// </summary>
    public sealed class PipelineRunner<TOutput> : PipelineRunner
    {
        private readonly Func<Tensor[], TOutput> _assemble;

        private PipelineRunner(StageGraph graph, ScheduleTable schedule, Func<int, PipelineStage> createStage, Func<Tensor[], TOutput> assemble, PipelineEnvironment environment, PipelineOptions? options,
            IReadOnlyDictionary<string, IReadOnlyList<nn.Module>>? moduleLists)
            : base(graph, schedule, createStage, environment, options, moduleLists)
        {
            _assemble = assemble;
        }

        /// <summary>Creates this rank's stage and picks the schedule table (the build-time one if the microbatch count matches).</summary>
        public static PipelineRunner<TOutput> Create(
            StageGraph graph, ScheduleTable buildTimeSchedule, Func<int, PipelineStage> createStage, Func<Tensor[], TOutput> assembleOutput,
            PipelineEnvironment environment, PipelineOptions? options = null, IReadOnlyDictionary<string, IReadOnlyList<nn.Module>>? moduleLists = null) =>
            new(graph, buildTimeSchedule, createStage, assembleOutput, environment, options, moduleLists);

        /// <summary>
        /// Runs the model's forward on a batch, microbatch by microbatch, without gradients. Returns the output
        /// (merged over the microbatches, by default concatenated along dimension 0) on the last stage's rank and
        /// null (default) on the others.
        /// </summary>
        public TOutput? Forward(params Tensor[] inputs) => ForwardOutputs(inputs) is { } outputs ? _assemble(outputs) : default;

        /// <summary>Forward, loss and backward of one batch with one model input. See <see cref="Step(Tensor[], Tensor, Func{TOutput, Tensor, Tensor})"/>.</summary>
        public Tensor Step(Tensor input, Tensor target, Func<TOutput, Tensor, Tensor> loss) => Step(new[] { input }, target, loss);

        /// <summary>
        /// Forward, loss and backward of one batch. <paramref name="loss"/> is applied to each microbatch's output and
        /// target; the microbatch losses are summed (with <see cref="LossReduction.Mean"/>, weighed by their share of
        /// the rows), so each parameter's gradient equals one backward of the whole batch. Gradients accumulate into the stage's parameters (call zero_grad as usual);
        /// replicated parameters (shared submodules, tied weights) then hold the gradient summed over their copies.
        /// Returns the summed loss on every rank.
        /// </summary>
        public Tensor Step(Tensor[] inputs, Tensor target, Func<TOutput, Tensor, Tensor> loss)
        {
            if (loss is null) throw new ArgumentNullException(nameof(loss));
            return StepOutputs(inputs, target, (outputs, t) => loss(_assemble(outputs), t));
        }
    }
}
