using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Runtime.Communication;
using Pippy.Runtime.Execution;
using Pippy.Runtime.Materialization;
using Pippy.Runtime.Runner;
using Pippy.Runtime.Transport;
using Pippy.Schedules;
using static TorchSharp.torch;

namespace Pippy.Runtime
{
    /// <summary>
    /// This rank's share of a pipeline: its stage and the schedule. Every rank calls the same methods with the same
    /// arguments (SPMD); each rank divides the batch into microbatches and runs its own list of actions. This class
    /// works on tensor arrays; <see cref="PipelineRunner{TOutput}"/> gives it the model's own output type.
    /// </summary>
    /// <remarks>
    /// A facade over parts with one concern each (Runner/): <see cref="SchedulePlan"/> picks the table,
    /// <see cref="PipelineTopology"/> places this rank and owns its communicators, <see cref="PipelineStepper"/> runs
    /// Forward and Step, <see cref="TrainingUtilities"/> clips and frees, <see cref="TraceFiles"/> and
    /// <see cref="PlanPrinter"/> report; checkpoints are in Checkpoints/.
    /// </remarks>
    public class PipelineRunner : IDisposable
    {
        /// <summary>Set to 0 to keep every message on MPI, also between ranks of one machine (<see cref="PipelineOptions.SharedMemory"/>).</summary>
        public const string SharedMemoryVariable = "PIPPY_SHARED_MEMORY";

        private readonly StageGraph _graph;
        private readonly PipelineOptions _options;
        private readonly PipelineTopology _topology;
        private readonly TensorTransport _transport;
        private readonly SharedMemoryPeers _peers;
        private readonly TensorTransport _replicaTransport;
        private readonly ReplicaSync _replicas;
        private readonly GradientReduction _gradients;
        private readonly PipelineStepper _stepper;
        private readonly IReadOnlyList<int> _rankOfStage;
        private bool _awaitingCheckpoint;

        /// <summary>Set when an exception left a Step or Forward: Dispose then waits for nothing the failed step left pending.</summary>
        private bool _failed;

        private protected PipelineRunner(StageGraph graph, ScheduleTable buildTimeSchedule, Func<int, PipelineStage> createStage, PipelineEnvironment environment, PipelineOptions? options,
            IReadOnlyDictionary<string, IReadOnlyList<nn.Module>>? moduleLists = null)
        {
            _options = options ?? new PipelineOptions();
            _graph = graph;
            Environment = environment;
            // A configuration mistake (rank count, options) is every rank's: agreed on, so it is said once.
            ScheduleTable? schedule = null;
            Exception? mistake = null;
            try
            {
                schedule = SchedulePlan.Resolve(graph, buildTimeSchedule, _options, environment.Size);
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException)
            {
                mistake = e;
            }
            FailureAgreement.Agree(mistake, environment.World, "checking the pipeline's configuration at Build");
            Schedule = schedule!;
            _rankOfStage = Schedule.RankOfStage();
            _topology = new PipelineTopology(Schedule.RankCount, _options.DataParallel, _options.ReceiveTimeout);

            var measured = _options.Balance.Measure(moduleLists, graph.ModelName, _topology.World);
            // Every stage is created here (they share the model's modules; only this rank's are kept), so that every
            // rank can check, before the first step, that all of them built the same model.
            var allStages = PipelineRanges.WithMeasuredCosts(measured, () => Enumerable.Range(0, graph.StageCount).Select(createStage).ToArray());
            Stages = allStages.Where(s => _rankOfStage[s.Index] == PipelineRank).ToArray();
            // Every rank divided every list the same way: rank 0 prints all of it, in stage order.
            var moduleRanges = PlanPrinter.ModuleRanges(allStages);
            ModelAgreement.Check(graph.ModelName, ModelAgreement.Describe(allStages), _topology.World);
            Materialized = MaterializeStages(graph);
            // What each rank gave memory to (every rank takes part, lazy or not), printed by rank 0 with the plan.
            var materialized = new double[2 * environment.Size];
            var given = new double[materialized.Length];
            materialized[2 * environment.Rank] = Materialized.Count;
            materialized[2 * environment.Rank + 1] = Materialized.Sum(t => t.Tensor.NumberOfElements * t.Tensor.ElementSize);
            _topology.World.Allreduce<double>(materialized, given, ReduceOperation.Sum, "Build (the tensors each rank gave memory to)");
            // PIPPY_STAGE_THROUGH_HOST=1 sends every tensor through host staging buffers, as CUDA tensors go without a
            // CUDA-aware MPI: how the GPU path's staging is tested on machines without a GPU.
            bool throughHost = System.Environment.GetEnvironmentVariable("PIPPY_STAGE_THROUGH_HOST") == "1";
            // Ranks of one machine pass CPU tensors through shared memory (not when testing host staging, which is MPI's path).
            bool sharedMemory = _options.SharedMemory && _options.LearnShapes && !throughHost && System.Environment.GetEnvironmentVariable(SharedMemoryVariable) != "0";
            _peers = SharedMemoryPeers.Discover(_topology.Pipeline, sharedMemory);
            _transport = new TensorTransport(_topology.Pipeline, learn: _options.LearnShapes, ChooseGpuTransport(environment, throughHost, out var ipc), _peers, ipc);
            _replicaTransport = new TensorTransport(_topology.Replicas);
            _replicas = new ReplicaSync(graph, Stages, _rankOfStage, PipelineRank, _replicaTransport);
            _replicas.BroadcastValues();
            if (DataParallelSize > 1) DataParallelSync.BroadcastValues(Parameters(), _topology.DataParallel, _transport.Staging);
            _gradients = new GradientReduction(DataParallelSize > 1 ? Parameters() : _replicas.Parameters, () =>
            {
                _replicas.SumGradients();
                if (DataParallelSize > 1) DataParallelSync.SumGradients(Parameters(), _topology.DataParallel, _transport.Staging);
            });
            _stepper = new PipelineStepper(graph, _options, Stages, _rankOfStage, Schedule, _topology, _transport, _gradients);
            if (_options.PrintPlan && environment.Rank == 0)
            {
                PlanPrinter.Print(graph, Schedule, _topology, _rankOfStage, moduleRanges);
                PlanPrinter.PrintMaterialized(given, rank => _rankOfStage.Select((r, stage) => (r, stage)).Where(x => x.r == rank % Schedule.RankCount).Select(x => x.stage));
            }
        }

        /// <summary>
        /// How CUDA tensors cross ranks (<see cref="CudaIpcPeers"/>, collective): the host staging every path keeps for
        /// what it does not carry, and the CUDA IPC channel where pairs of ranks chose it. Rank 0 says which path and
        /// why, once, where its tensors are on a GPU or <see cref="GpuTransportChoice.Variable"/> is set (CPU runs print as before).
        /// </summary>
        private DeviceStaging ChooseGpuTransport(PipelineEnvironment environment, bool throughHost, out CudaIpcChannel? ipc)
        {
            var device = Stages.SelectMany(s => s.parameters()).Select(p => p.device).FirstOrDefault() ?? CPU;
            bool aware = Native.MpiLibrary.CudaAware();
            string? forced = System.Environment.GetEnvironmentVariable(GpuTransportChoice.Variable);
            var peers = CudaIpcPeers.Discover(_topology.Pipeline, device, aware, forced, CudaIpcPeers.Runtime, _options.LearnShapes && !throughHost);
            FailureAgreement.Agree(peers.Mistake, environment.World, "choosing how CUDA tensors cross ranks at Build");
            ipc = peers.Cuda is { } cuda ? new CudaIpcChannel(cuda, _topology.Pipeline, peers.IpcPeers) : null;
            if (environment.Rank == 0 && (device.type == TorchSharp.DeviceType.CUDA || !string.IsNullOrWhiteSpace(forced)))
                Console.WriteLine(peers.Describe(_topology.Pipeline.Rank));
            return new DeviceStaging(aware && forced?.Trim().ToLowerInvariant() != "host", throughHost);
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
            return tensors;
        }

        private void ThrowIfAwaitingCheckpoint()
        {
            if (_awaitingCheckpoint)
                throw new InvalidOperationException(
                    "This pipeline was built with WeightInitialization.FromCheckpoint(), so its parameters have no values yet: call LoadCheckpoint before the first Step or Forward.");
        }

        /// <summary>This rank's place in its pipeline (the schedule's rank).</summary>
        public int PipelineRank => _topology.PipelineRank;

        /// <summary>How many ranks one pipeline takes.</summary>
        public int PipelineRanks => _topology.PipelineRanks;

        /// <summary>Which data-parallel replica (pipeline) this rank belongs to.</summary>
        public int DataParallelRank => _topology.DataParallelRank;

        /// <summary>How many pipelines train side by side (<see cref="PipelineOptions.DataParallel"/>).</summary>
        public int DataParallelSize => _topology.DataParallelSize;

        public PipelineEnvironment Environment { get; }

        /// <summary>Every rank of the job, for the checkpoints' collectives (the watchdog's timeout is <see cref="PipelineOptions.ReceiveTimeout"/>).</summary>
        internal MpiCommunicator World => _topology.World;

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
        public bool IsLastStage => _stepper.IsLastStage;

        /// <summary>What this rank sent in the last <c>Step</c>.</summary>
        public StepStatistics LastStep => _stepper.LastStep;

        /// <summary>
        /// Runs forward on a batch, microbatch by microbatch, without gradients. Returns every output of forward
        /// (each merged over the microbatches) on the last stage's rank, and null on the others.
        /// </summary>
        public Tensor[]? ForwardOutputs(params Tensor[] inputs)
        {
            ThrowIfAwaitingCheckpoint();
            var arguments = ForwardArguments.OfTensors(_graph, inputs);
            return RunOrMarkFailed(() => _stepper.Forward(arguments));
        }

        /// <summary>
        /// <see cref="ForwardOutputs(Tensor[])"/> for a forward that also takes plain arguments (a flag, a number, a
        /// string, an enum): all of forward's arguments in its order, tensors and plain values. Every stage that reads a
        /// plain argument gets the same value for every microbatch; every rank must give the same ones.
        /// </summary>
        public Tensor[]? ForwardOutputs(params object?[] arguments)
        {
            ThrowIfAwaitingCheckpoint();
            var separated = ForwardArguments.Of(_graph, arguments);
            return RunOrMarkFailed(() => _stepper.Forward(separated));
        }

        /// <summary>
        /// Forward, loss and backward of one batch on tensor arrays: <paramref name="loss"/> gets each microbatch's
        /// outputs and target. See <see cref="PipelineRunner{TOutput}.Step(Tensor[], Tensor, Func{TOutput, Tensor, Tensor})"/>.
        /// </summary>
        public Tensor StepOutputs(Tensor[] inputs, Tensor target, Func<Tensor[], Tensor, Tensor> loss) => Step(ForwardArguments.OfTensors(_graph, inputs), target, loss);

        /// <summary>
        /// <see cref="StepOutputs(Tensor[], Tensor, Func{Tensor[], Tensor, Tensor})"/> for a forward that also takes plain
        /// arguments: all of forward's arguments in its order (see <see cref="ForwardOutputs(object[])"/>).
        /// </summary>
        public Tensor StepOutputs(object?[] arguments, Tensor target, Func<Tensor[], Tensor, Tensor> loss) => Step(ForwardArguments.Of(_graph, arguments), target, loss);

        private Tensor Step(ForwardArguments arguments, Tensor target, Func<Tensor[], Tensor, Tensor> loss)
        {
            if (loss is null) throw new ArgumentNullException(nameof(loss));
            if (target is null) throw new ArgumentNullException(nameof(target));
            ThrowIfAwaitingCheckpoint();
            return RunOrMarkFailed(() => _stepper.Step(arguments, target, loss));
        }

        /// <summary>
        /// Like <see cref="StepOutputs"/>, and also returns the outputs of forward (each merged over the microbatches)
        /// on the last stage's rank, null on the others.
        /// </summary>
        public Tensor StepOutputs(Tensor[] inputs, Tensor target, Func<Tensor[], Tensor, Tensor> loss, out Tensor[]? outputs) =>
            Step(ForwardArguments.OfTensors(_graph, inputs), target, loss, out outputs);

        /// <summary>Like <see cref="StepOutputs(object[], Tensor, Func{Tensor[], Tensor, Tensor})"/>, and also returns the merged outputs on the last stage's rank.</summary>
        public Tensor StepOutputs(object?[] arguments, Tensor target, Func<Tensor[], Tensor, Tensor> loss, out Tensor[]? outputs) =>
            Step(ForwardArguments.Of(_graph, arguments), target, loss, out outputs);

        private Tensor Step(ForwardArguments inputs, Tensor target, Func<Tensor[], Tensor, Tensor> loss, out Tensor[]? outputs)
        {
            if (loss is null) throw new ArgumentNullException(nameof(loss));
            if (target is null) throw new ArgumentNullException(nameof(target));
            ThrowIfAwaitingCheckpoint();
            Tensor[]? merged = null;
            var value = RunOrMarkFailed(() => _stepper.Step(inputs, target, loss, out merged, withOutputs: true));
            outputs = merged;
            return value;
        }

        /// <summary>
        /// Evaluation on tensor arrays: the loss of a batch with every stage in eval mode (dropout off, restored after),
        /// without gradients. Every rank calls it; each gets the batch's loss. With <paramref name="withOutputs"/>, the
        /// last stage's rank also gets the outputs in <paramref name="outputs"/>.
        /// </summary>
        public Tensor EvaluateOutputs(Tensor[] inputs, Tensor target, Func<Tensor[], Tensor, Tensor> loss, out Tensor[]? outputs, bool withOutputs = true) =>
            Evaluate(ForwardArguments.OfTensors(_graph, inputs), target, loss, out outputs, withOutputs);

        /// <summary>
        /// <see cref="EvaluateOutputs(Tensor[], Tensor, Func{Tensor[], Tensor, Tensor}, out Tensor[], bool)"/> for a forward that
        /// also takes plain arguments: all of forward's arguments in its order (see <see cref="ForwardOutputs(object[])"/>).
        /// </summary>
        public Tensor EvaluateOutputs(object?[] arguments, Tensor target, Func<Tensor[], Tensor, Tensor> loss, out Tensor[]? outputs, bool withOutputs = true) =>
            Evaluate(ForwardArguments.Of(_graph, arguments), target, loss, out outputs, withOutputs);

        private Tensor Evaluate(ForwardArguments inputs, Tensor target, Func<Tensor[], Tensor, Tensor> loss, out Tensor[]? outputs, bool withOutputs)
        {
            if (loss is null) throw new ArgumentNullException(nameof(loss));
            if (target is null) throw new ArgumentNullException(nameof(target));
            ThrowIfAwaitingCheckpoint();
            Tensor[]? merged = null;
            var value = RunOrMarkFailed(() => _stepper.Evaluate(inputs, target, loss, out merged, withOutputs));
            outputs = merged;
            return value;
        }

        /// <summary>
        /// Runs a step's work; an exception that leaves it marks this runner failed, so that <see cref="Dispose"/> (run
        /// while that exception unwinds through the user's <c>using</c>) returns within seconds instead of waiting for
        /// messages and shared-memory slots that the failed step will never see taken.
        /// </summary>
        private T RunOrMarkFailed<T>(Func<T> work)
        {
            try
            {
                return work();
            }
            catch
            {
                _failed = true;
                throw;
            }
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
        public double ClipGradNorm(double maxNorm)
        {
            if (_gradients.Pending)
                throw new InvalidOperationException(
                    "ClipGradNorm was called after Steps inside NoSync(), whose gradients are not summed across replicas and tied copies yet; " +
                    "clip after the Step outside NoSync() that ends the accumulation.");
            return TrainingUtilities.ClipGradNorm(Parameters(), _replicas, _topology.Pipeline, maxNorm);
        }

        /// <summary>
        /// Shards the optimizer's state across the data-parallel replicas (ZeRO-1): returns this replica's share of
        /// <see cref="Parameters"/> for the optimizer, and <see cref="OptimizerShard.Gather"/> to call after each of its
        /// steps. With one replica the share is every parameter.
        /// </summary>
        public OptimizerShard ShardOptimizerState() => ShardOver(Parameters());

        /// <summary>The sharding of <see cref="ShardOptimizerState"/> over other parameters in the same order (mixed precision's float32 masters).</summary>
        internal OptimizerShard ShardOver(IReadOnlyList<TorchSharp.Modules.Parameter> parameters)
        {
            var shard = new OptimizerShard(parameters, DataParallelSize, DataParallelRank, _topology.DataParallel, _transport.Staging);
            _shard = DataParallelSize > 1 ? shard : null;
            return shard;
        }

        private OptimizerShard? _shard;

        /// <summary>The sharding of the optimizer's state across replicas, if any: a checkpoint writes each replica's share to a file of its own.</summary>
        internal OptimizerShard? ShardedOptimizer => _shard;

        /// <summary>Whether each of <see cref="Parameters"/> counts in a gradient norm (one copy of each replicated parameter does).</summary>
        internal bool[] CountedInNorm() => Parameters().Select(p => !_replicas.IsSecondaryCopy(p)).ToArray();

        /// <summary>Clips other tensors' gradients (mixed precision's float32 masters) by the pipeline-wide norm; see <see cref="ClipGradNorm(double)"/>.</summary>
        internal double ClipGradNorm(IReadOnlyList<TorchSharp.Modules.Parameter> parameters, IReadOnlyList<bool> counted, double maxNorm) =>
            TrainingUtilities.ClipGradNorm(parameters, counted, _topology.Pipeline, maxNorm);

        /// <summary>
        /// Frees, on this rank, the memory of every parameter and buffer of <paramref name="model"/> that this rank's
        /// stages do not hold (the other ranks' stages), so each rank keeps only its share of the model. Call it after
        /// <c>Build</c>; afterwards the model itself can no longer run here (its other parts are disposed), only the
        /// pipeline. Returns the number of bytes released. The peak is still the whole model, since every rank built
        /// it first; a model built with <see cref="LazyModel.Construct{T}"/> never gives the other stages memory.
        /// </summary>
        public long ReleaseOtherStages(nn.Module model) => TrainingUtilities.ReleaseOtherStages(Stages, model);

        /// <summary>
        /// Saves a checkpoint in <paramref name="directory"/> (every rank calls it): each rank's stages, the optimizer's
        /// state, <paramref name="step"/> and the RNG state, with an index, each file written atomically. With the
        /// optimizer's state sharded (<see cref="ShardOptimizerState"/>), each replica writes its share to a file of its
        /// own, which a load with the same number of replicas reads back.
        /// </summary>
        public void SaveCheckpoint(string directory, TorchSharp.Modules.OptimizerHelper? optimizer = null, long step = 0) =>
            Checkpoints.PipelineCheckpoint.Save(directory, this, _graph, optimizer, step);

        /// <summary>
        /// Restores a checkpoint saved by <see cref="SaveCheckpoint"/> (every rank calls it); returns its step. A sharded
        /// optimizer state loads into an optimizer sharded across as many replicas.
        /// </summary>
        public long LoadCheckpoint(string directory, TorchSharp.Modules.OptimizerHelper? optimizer = null)
        {
            long step = Checkpoints.PipelineCheckpoint.Load(directory, this, _graph, optimizer);
            _awaitingCheckpoint = false;
            return step;
        }

        /// <summary>
        /// Writes the last <c>Step</c>'s measured actions of every rank of the job into one Chrome-trace file (open it in
        /// ui.perfetto.dev or chrome://tracing): a track per rank, an event per action (a receive's event is its wait).
        /// Every rank calls it; rank 0 gathers the timelines over MPI and writes the file atomically.
        /// </summary>
        public void WriteTrace(string path) => TraceFiles.WriteJob(_topology.World, LastStep, path);

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
            // Peers ring their own mappings of this rank's doorbell: closing it here leaves theirs valid.
            _peers.Dispose();
            _topology.Dispose();
            foreach (var stage in Stages) stage.Dispose();
        }
    }
}
