using System;
using System.Linq;
using Pippy.Runtime.Execution;
using Pippy.Runtime.Transport;
using Pippy.Schedules;
using TorchSharp;
using static TorchSharp.torch;
using MpiU = MPI.Unsafe;

namespace Pippy.Runtime
{
    /// <summary>
    /// This rank's share of a pipeline: its stage and the schedule. Every rank calls the same methods with the same
    /// arguments (SPMD); each rank splits the batch into microbatches and runs its own list of actions.
    /// </summary>
    public sealed class PipelineRunner : IDisposable
    {
        private readonly StageGraph _graph;
        private readonly TensorTransport _transport = new();

        private PipelineRunner(StageGraph graph, ScheduleTable schedule, PipelineStage stage, PipelineEnvironment environment)
        {
            _graph = graph;
            Schedule = schedule;
            Stage = stage;
            Environment = environment;
        }

        /// <summary>Creates this rank's stage and picks the schedule table (the build-time one if the microbatch count matches).</summary>
        public static PipelineRunner Create(
            StageGraph graph, ScheduleTable buildTimeSchedule, Func<int, PipelineStage> createStage,
            PipelineEnvironment environment, PipelineOptions? options = null)
        {
            options ??= new PipelineOptions();
            if (environment.Size != graph.StageCount)
                throw new InvalidOperationException(
                    $"{graph.ModelName} has {graph.StageCount} stages and runs one stage per rank, but this job has {environment.Size} rank(s): " +
                    $"start it with mpiexec -n {graph.StageCount}.");
            int microbatches = options.Microbatches ?? buildTimeSchedule.Microbatches;
            var schedule = microbatches == buildTimeSchedule.Microbatches
                ? buildTimeSchedule
                : ScheduleBuilder.Build(buildTimeSchedule.Kind, graph.Links(), microbatches);
            var stage = createStage(environment.Rank);
            if (options.PrintPlan && environment.Rank == 0)
            {
                Console.WriteLine($"[pippy] {graph.ModelName}: {graph.StageCount} stages on {environment.Size} ranks, {schedule.Kind}, {microbatches} microbatches");
                foreach (var spec in graph.Stages)
                    Console.WriteLine($"[pippy]   stage {spec.Index} (rank {spec.Index}): {string.Join(", ", spec.Modules)}; in: {string.Join(", ", spec.Inputs)}; out: {string.Join(", ", spec.Outputs)}");
            }
            return new PipelineRunner(graph, schedule, stage, environment);
        }

        public PipelineEnvironment Environment { get; }

        /// <summary>The stage this rank runs; its parameters are the model's own.</summary>
        public PipelineStage Stage { get; }

        /// <summary>The table this runner executes.</summary>
        public ScheduleTable Schedule { get; }

        public int Microbatches => Schedule.Microbatches;

        public bool IsLastStage => Stage.Index == _graph.StageCount - 1;

        /// <summary>
        /// Runs the model's forward on a batch, microbatch by microbatch, without gradients. Returns the output
        /// (microbatch outputs concatenated along dimension 0) on the last stage's rank and null on the others.
        /// </summary>
        public Tensor? Forward(params Tensor[] inputs)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var interpreter = Interpreter(inputs, targets: null, loss: null);
            interpreter.Run(Schedule.ForwardOnly().ActionsOf(Environment.Rank));
            return IsLastStage ? Microbatching.Merge(interpreter.LastStageOutputs.Select(o => o!).ToArray()).MoveToOuterDisposeScope() : null;
        }

        /// <summary>Forward, loss and backward of one batch with one model input. See <see cref="Step(Tensor[], Tensor, Func{Tensor, Tensor, Tensor})"/>.</summary>
        public Tensor Step(Tensor input, Tensor target, Func<Tensor, Tensor, Tensor> loss) => Step(new[] { input }, target, loss);

        /// <summary>
        /// Forward, loss and backward of one batch. <paramref name="loss"/> is applied to each microbatch's output and
        /// target; the microbatch losses are summed, so with a sum-reduced loss each parameter's gradient equals one
        /// backward of the whole batch. Gradients accumulate into the stage's parameters (call zero_grad as usual).
        /// Returns the summed loss on every rank.
        /// </summary>
        public Tensor Step(Tensor[] inputs, Tensor target, Func<Tensor, Tensor, Tensor> loss)
        {
            if (loss is null) throw new ArgumentNullException(nameof(loss));
            using var scope = NewDisposeScope();
            var targets = Microbatching.Split(target, Microbatches, "The target");
            var interpreter = Interpreter(inputs, targets, loss);
            interpreter.Run(Schedule.ActionsOf(Environment.Rank));
            Tensor? total = IsLastStage ? interpreter.Losses.Select(l => l!.detach()).Aggregate((a, b) => a + b) : null;
            return BroadcastFromLastStage(total).MoveToOuterDisposeScope();
        }

        private ScheduleInterpreter Interpreter(Tensor[] inputs, Tensor[]? targets, Func<Tensor, Tensor, Tensor>? loss)
        {
            if (inputs is null || inputs.Length != _graph.ModelInputs.Count)
                throw new ArgumentException(
                    $"{_graph.ModelName}.forward takes {_graph.ModelInputs.Count} input(s) ({string.Join(", ", _graph.ModelInputs)}) but {inputs?.Length ?? 0} were given.",
                    nameof(inputs));
            var chunks = inputs.Select((t, i) => Microbatching.Split(t, Microbatches, $"Input '{_graph.ModelInputs[i]}'")).ToArray();
            return new ScheduleInterpreter(Stage, _graph, _transport, Microbatches, chunks, targets, loss);
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
            int code = MpiU.MPI_Bcast((IntPtr)message, 2, MpiU.MPI_DOUBLE, _graph.StageCount - 1, MpiU.MPI_COMM_WORLD);
            if (code != 0) throw new InvalidOperationException($"MPI_Bcast of the loss failed with MPI error {code}.");
            return value ?? tensor(message[0], dtype: ScalarType.Float64).to_type((ScalarType)(int)message[1]);
        }

        public void Dispose()
        {
            _transport.Dispose();
            Stage.Dispose();
        }
    }
}
