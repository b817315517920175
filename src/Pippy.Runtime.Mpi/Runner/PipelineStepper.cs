using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Runtime.Execution;
using Pippy.Runtime.Transport;
using Pippy.Schedules;
using static TorchSharp.torch;

namespace Pippy.Runtime.Runner
{
    /// <summary>
    /// One batch through this rank's part of the pipeline: divides it into this replica's microbatches, runs this
    /// rank's actions with a <see cref="ScheduleInterpreter"/>, and gathers what the step returns (the outputs merged
    /// on the last stage; the loss on every rank) and what it measured (<see cref="StepStatistics"/>).
    /// </summary>
    internal sealed class PipelineStepper(
        StageGraph graph, PipelineOptions options, IReadOnlyList<PipelineStage> stages, IReadOnlyList<int> rankOfStage, ScheduleTable schedule,
        PipelineTopology topology, TensorTransport transport, GradientReduction gradients)
    {
        private const int StepPhase = 0, ForwardPhase = 1;
        private readonly string?[] _shapesOfPhase = new string?[2];

        public bool IsLastStage => rankOfStage[graph.StageCount - 1] == topology.PipelineRank;

        /// <summary>What this rank sent and measured in the last step.</summary>
        public StepStatistics LastStep { get; private set; }

        /// <summary>Forward without gradients; the merged outputs on the last stage's rank, null elsewhere.</summary>
        public Tensor[]? Forward(ForwardArguments arguments)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            GiveStages(arguments);
            var interpreter = Interpreter(Divide(arguments.Tensors, target: null).Inputs, targets: null, loss: null, phase: ForwardPhase);
            // A run that throws leaves its buffers where they are (receives may still be posted into them): the
            // runner's Dispose deals with them.
            interpreter.Run(schedule.ForwardOnly().ActionsOf(topology.PipelineRank));
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

        /// <summary>Forward, loss and backward of one batch; the batch's loss on every rank.</summary>
        public Tensor Step(ForwardArguments arguments, Tensor target, Func<Tensor[], Tensor, Tensor> loss) => Step(arguments, target, loss, out _, withOutputs: false);

        /// <summary>
        /// Forward, loss and backward of one batch; the batch's loss on every rank, and with <paramref name="withOutputs"/>
        /// the merged outputs on the last stage's rank (null elsewhere).
        /// </summary>
        public Tensor Step(ForwardArguments arguments, Tensor target, Func<Tensor[], Tensor, Tensor> loss, out Tensor[]? outputs, bool withOutputs)
        {
            using var scope = NewDisposeScope();
            GiveStages(arguments);
            var (chunks, targets) = Divide(arguments.Tensors, target);
            var interpreter = Interpreter(chunks, targets, loss, phase: StepPhase, LossWeights(target, targets!));
            if (options.TraceDirectory is not null) topology.World.Barrier("the start of a traced step"); // one start for every rank's clock
            int buffersBefore = transport.BuffersAllocated, slotsBefore = transport.SharedSlotsCreated;
            var sendsBefore = transport.SendCounts;
            var pathsBefore = transport.PathCounts;
            gradients.BeforeStep();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            try
            {
                interpreter.Run(schedule.ActionsOf(topology.PipelineRank));
            }
            finally
            {
                interpreter.FreeActivations();
            }
            double runMs = clock.Elapsed.TotalMilliseconds;
            interpreter.ReleaseBuffers();
            var sends = transport.SendCounts;
            var paths = transport.PathCounts - pathsBefore;
            LastStep = new StepStatistics(interpreter.ActivationsSent, interpreter.GradientsSent, interpreter.Timeline.ToArray())
            {
                ReceiveBuffersAllocated = transport.BuffersAllocated - buffersBefore,
                SharedSlotsCreated = transport.SharedSlotsCreated - slotsBefore,
                MessagesWithHeader = sends.WithHeader - sendsBefore.WithHeader,
                MessagesMemoryOnly = sends.MemoryOnly - sendsBefore.MemoryOnly,
                MessagesViaSharedMemory = paths.ViaSharedMemory,
                BytesViaSharedMemory = paths.BytesViaSharedMemory,
                MessagesViaMpi = paths.ViaMpi,
                BytesViaMpi = paths.BytesViaMpi,
                MessagesViaCudaIpc = paths.ViaCudaIpc,
                BytesViaCudaIpc = paths.BytesViaCudaIpc,
                ForwardsRunEarly = interpreter.ForwardsRunEarly,
                RunMilliseconds = runMs,
                StartTimestamp = interpreter.StartTimestamp,
                HostStagingBuffers = transport.Staging.Allocated,
                ComputeMilliseconds = ActionMeter.Milliseconds(interpreter.Time.ComputeTicks),
                CommunicationMilliseconds = ActionMeter.Milliseconds(interpreter.Time.CommunicationTicks),
            };
            if (options.TraceDirectory is { } directory) TraceFiles.WriteRank(directory, topology.World.Rank, interpreter.Timeline);
            gradients.AfterStep();
            return BatchLoss(interpreter, withOutputs, checkModes: true, out outputs);
        }

        /// <summary>
        /// Evaluation: the forward-only table with every stage of this rank in eval mode (dropout off; restored after),
        /// without gradients, and the loss of each microbatch on the last stage. Returns the batch's loss (reduced as
        /// <see cref="PipelineOptions.LossReduction"/> says, summed over data-parallel replicas) on every rank, and with
        /// <paramref name="withOutputs"/> the merged outputs on the last stage's rank.
        /// </summary>
        public Tensor Evaluate(ForwardArguments arguments, Tensor target, Func<Tensor[], Tensor, Tensor> loss, out Tensor[]? outputs, bool withOutputs)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            GiveStages(arguments);
            var (chunks, targets) = Divide(arguments.Tensors, target);
            var wasTraining = stages.Select(s => s.training).ToArray();
            foreach (var stage in stages) stage.eval();
            try
            {
                var interpreter = Interpreter(chunks, targets, loss, phase: ForwardPhase, LossWeights(target, targets!), evaluating: true);
                interpreter.Run(schedule.ForwardOnly().ActionsOf(topology.PipelineRank));
                try
                {
                    return BatchLoss(interpreter, withOutputs, checkModes: false, out outputs);
                }
                finally
                {
                    interpreter.ReleaseBuffers();
                }
            }
            finally
            {
                for (int i = 0; i < stages.Count; i++) stages[i].train(wasTraining[i]);
            }
        }

        /// <summary>
        /// Gives this rank's stages forward's plain arguments for the step, after checking that every rank of the job
        /// was given the same ones (one small allreduce, only for a forward that takes plain arguments): ranks that
        /// disagree would each run their stages with other values, and the pipeline would not be the model.
        /// </summary>
        private void GiveStages(ForwardArguments arguments)
        {
            if (graph.Arguments.Count > 0)
            {
                // Equal keys on all n ranks exactly when n * sum(key^2) == sum(key)^2 (Cauchy-Schwarz); both sums are exact.
                double key = arguments.AgreementKey();
                Span<double> mine = stackalloc double[] { key, key * key, 1 };
                Span<double> all = stackalloc double[3];
                topology.World.Allreduce<double>(mine, all, Communication.ReduceOperation.Sum, "forward's plain arguments, to check that every rank has the same");
                if (all[2] * all[1] != all[0] * all[0])
                    throw new InvalidOperationException(
                        $"The ranks were given different plain arguments of {graph.ModelName}.forward for this step (here: {arguments.Show(graph)}): " +
                        "every rank must call it with the same values, which every stage that reads them then uses for every microbatch.");
            }
            foreach (var stage in stages) stage.ForwardArguments = arguments.Values;
        }

        /// <summary>
        /// After a run: the microbatch losses summed on the last stage, on every rank of the pipeline (and summed over
        /// data-parallel replicas), out of the step's scope; with <paramref name="withOutputs"/> the merged outputs on
        /// the last stage's rank.
        /// </summary>
        private Tensor BatchLoss(ScheduleInterpreter interpreter, bool withOutputs, bool checkModes, out Tensor[]? outputs)
        {
            Tensor? total = IsLastStage ? interpreter.LastStage!.Losses.Select(l => l!.detach()).Aggregate((a, b) => a + b) : null;
            var batchLoss = BroadcastFromLastStage(total, checkModes);
            if (topology.DataParallelSize > 1) batchLoss = DataParallelSync.SumScalar(batchLoss, topology.DataParallel);
            outputs = withOutputs && IsLastStage ? Detached(MergeOutputs(interpreter)) : null;
            return batchLoss.MoveToOuterDisposeScope();
        }

        /// <summary>Copies out of the step's scope, sharing memory with no receive buffer that the next step reuses.</summary>
        private static Tensor[] Detached(Tensor[] merged)
        {
            var copies = merged.Select(o => o.detach().clone()).ToArray();
            foreach (var copy in copies) copy.MoveToOuterDisposeScope();
            return copies;
        }

        /// <summary>For <see cref="LossReduction.Mean"/>: each microbatch's share of the target's rows (1/m each when it is replicated).</summary>
        private double[]? LossWeights(Tensor target, Tensor[] parts)
        {
            if (options.LossReduction == LossReduction.Sum) return null;
            // A custom division is weighed by its parts' rows (dimension 0).
            if (options.Target.IsCustom && target.dim() > 0) return parts.Select(p => (double)p.shape[0] / target.shape[0]).ToArray();
            if (options.Target.Dimension is not int dimension) return Enumerable.Repeat(1.0 / parts.Length, parts.Length).ToArray();
            int dim = dimension < 0 ? dimension + (int)target.dim() : dimension;
            return parts.Select(p => (double)p.shape[dim] / target.shape[dim]).ToArray();
        }

        /// <summary>
        /// Divides the inputs (and the target) into this rank's microbatches: first this replica's share when there are
        /// data-parallel replicas, then the microbatches, each value as its spec says (a custom spec given to several
        /// values divides them together, the target last). An optional input given as null (a <c>Tensor?</c> argument of
        /// forward) is not divided: every microbatch gets null, and the stages that read it are given null.
        /// </summary>
        private (Tensor[][] Inputs, Tensor[]? Targets) Divide(Tensor[] inputs, Tensor? target)
        {
            if (inputs is null || inputs.Length != graph.ModelInputs.Count)
                throw new ArgumentException(
                    $"{graph.ModelName}.forward takes {graph.ModelInputs.Count} input(s) ({string.Join(", ", graph.ModelInputs)}) but {inputs?.Length ?? 0} were given.",
                    nameof(inputs));
            int[] given = Enumerable.Range(0, inputs.Length).Where(i => inputs[i] is not null).ToArray();
            var values = given.Select(i => (What: $"Input '{graph.ModelInputs[i]}'", Value: inputs[i], Spec: InputSpec(graph.ModelInputs[i]))).ToList();
            if (target is not null) values.Add(("The target", target, options.Target));
            if (topology.DataParallelSize > 1)
            {
                var shares = Microbatching.Divide(values, topology.DataParallelSize, "data-parallel replicas");
                values = values.Select((v, i) => (v.What, shares[i][topology.DataParallelRank], v.Spec)).ToList();
            }
            var parts = Microbatching.Divide(values, schedule.Microbatches);
            var chunks = new Tensor[inputs.Length][];
            for (int i = 0; i < inputs.Length; i++) chunks[i] = new Tensor[schedule.Microbatches];   // null: an optional input not given
            for (int k = 0; k < given.Length; k++) chunks[given[k]] = parts[k];
            return (chunks, target is null ? null : parts[given.Length]);
        }

        private ScheduleInterpreter Interpreter(Tensor[][] chunks, Tensor[]? targets, Func<Tensor[], Tensor, Tensor>? loss, int phase, double[]? lossWeights = null, bool evaluating = false)
        {
            // The messages' shapes follow from the microbatches' shapes, which every rank of the pipeline computes
            // alike: when they change, every rank forgets what it learned, and the step sends headers again.
            string shapes = string.Join(";", chunks.SelectMany(c => c).Select(t => t is null ? "null" : $"{t.dtype}[{string.Join(",", t.shape)}]"));
            if (_shapesOfPhase[phase] != shapes)
            {
                if (_shapesOfPhase[phase] is not null) transport.Forget(phase);
                _shapesOfPhase[phase] = shapes;
            }
            transport.Phase = phase;
            return new ScheduleInterpreter(stages, graph, rankOfStage, topology.PipelineRank, transport, schedule.Microbatches, chunks, targets, loss, lossWeights, options.Recompute && !evaluating, evaluating, evaluating ? null : options.RecomputeStages);
        }

        private MicrobatchSpec InputSpec(string name) => options.Inputs.TryGetValue(name, out var spec) ? spec : MicrobatchSpec.Split(0);

        private Tensor[] MergeOutputs(ScheduleInterpreter interpreter) =>
            Enumerable.Range(0, graph.OutputCount)
                .Select(k => (k < options.Outputs.Count ? options.Outputs[k] : OutputMerge.Concat(0))
                    .Merge(interpreter.LastStage!.LastOutputs.Select(o => o![k]).ToArray()))
                .ToArray();

        /// <summary>
        /// The last stage's loss on every rank, with its dtype, in one allreduce over the pipeline that also counts the
        /// ranks whose stages are all in training mode and those whose stages are all in eval mode: a pipeline whose
        /// ranks disagree (model.eval() called on some ranks only) would mix dropout on and off in one step, so with
        /// <paramref name="checkModes"/> that is an error on every rank.
        /// </summary>
        private Tensor BroadcastFromLastStage(Tensor? value, bool checkModes = false)
        {
            Span<double> mine = stackalloc double[4];
            Span<double> all = stackalloc double[4];
            if (value is not null)
            {
                mine[0] = value.to_type(ScalarType.Float64).item<double>();
                mine[1] = (double)value.dtype;
            }
            var modes = stages.SelectMany(s => s.modules().Prepend(s)).Select(m => m.training).ToArray();
            mine[2] = modes.All(t => t) ? 1 : 0;
            mine[3] = modes.All(t => !t) ? 1 : 0;
            topology.Pipeline.Allreduce<double>(mine, all, Communication.ReduceOperation.Sum, "the step's loss to every rank of the pipeline");
            if (checkModes && all[2] > 0 && all[3] > 0)
                throw new InvalidOperationException(
                    $"The ranks of the pipeline disagree on training mode: on {all[2]} rank(s) every stage is in training mode, on {all[3]} every stage is in eval mode. " +
                    "Call train() or eval() on the model on every rank (or use Evaluate, which switches every rank's stages to eval mode and back).");
            return value ?? tensor(all[0], dtype: ScalarType.Float64).to_type((ScalarType)(int)all[1]);
        }
    }
}
