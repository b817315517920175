using System;
using System.Collections.Generic;
using Pippy.Schedules;
using static TorchSharp.torch;

namespace Pippy.Runtime
{
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

        /// <summary>
        /// <see cref="Forward(Tensor[])"/> for a forward that also takes plain arguments (a flag, a number, a string, an
        /// enum): all of forward's arguments in its order, as the model's own forward takes them. Every stage that reads
        /// a plain argument gets the same value for every microbatch; every rank must give the same ones.
        /// </summary>
        public TOutput? Forward(params object?[] arguments) => ForwardOutputs(arguments) is { } outputs ? _assemble(outputs) : default;

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

        /// <summary>
        /// <see cref="Step(Tensor[], Tensor, Func{TOutput, Tensor, Tensor})"/> that also gives the batch's output
        /// (merged over the microbatches) on the last stage's rank, and default on the others.
        /// </summary>
        public Tensor Step(Tensor[] inputs, Tensor target, Func<TOutput, Tensor, Tensor> loss, out TOutput? output)
        {
            if (loss is null) throw new ArgumentNullException(nameof(loss));
            var value = StepOutputs(inputs, target, (outputs, t) => loss(_assemble(outputs), t), out var merged);
            output = merged is null ? default : _assemble(merged);
            return value;
        }

        /// <summary>
        /// <see cref="Step(Tensor[], Tensor, Func{TOutput, Tensor, Tensor})"/> for a forward that also takes plain
        /// arguments: all of forward's arguments in its order (see <see cref="Forward(object[])"/>).
        /// </summary>
        public Tensor Step(object?[] arguments, Tensor target, Func<TOutput, Tensor, Tensor> loss)
        {
            if (loss is null) throw new ArgumentNullException(nameof(loss));
            return StepOutputs(arguments, target, (outputs, t) => loss(_assemble(outputs), t));
        }

        /// <summary><see cref="Step(object[], Tensor, Func{TOutput, Tensor, Tensor})"/> that also gives the batch's output on the last stage's rank.</summary>
        public Tensor Step(object?[] arguments, Tensor target, Func<TOutput, Tensor, Tensor> loss, out TOutput? output)
        {
            if (loss is null) throw new ArgumentNullException(nameof(loss));
            var value = StepOutputs(arguments, target, (outputs, t) => loss(_assemble(outputs), t), out var merged);
            output = merged is null ? default : _assemble(merged);
            return value;
        }

        /// <summary>Evaluation of one batch with one model input. See <see cref="Evaluate(Tensor[], Tensor, Func{TOutput, Tensor, Tensor})"/>.</summary>
        public Tensor Evaluate(Tensor input, Tensor target, Func<TOutput, Tensor, Tensor> loss) => Evaluate(new[] { input }, target, loss);

        /// <summary>
        /// The loss of a batch with the model in eval mode: the forward-only schedule, every stage in eval mode
        /// (dropout off; each stage's mode is restored after), no gradients, the microbatch losses combined as in
        /// <c>Step</c> (so a mean loss is the batch's mean). Every rank calls it and gets the loss; parameters and
        /// their gradients are untouched.
        /// </summary>
        public Tensor Evaluate(Tensor[] inputs, Tensor target, Func<TOutput, Tensor, Tensor> loss) => Evaluate(inputs, target, loss, out _);

        /// <summary>
        /// <see cref="Evaluate(Tensor[], Tensor, Func{TOutput, Tensor, Tensor})"/> that also gives the batch's output on the
        /// last stage's rank (default on the others).
        /// </summary>
        public Tensor Evaluate(Tensor[] inputs, Tensor target, Func<TOutput, Tensor, Tensor> loss, out TOutput? output)
        {
            if (loss is null) throw new ArgumentNullException(nameof(loss));
            var value = EvaluateOutputs(inputs, target, (outputs, t) => loss(_assemble(outputs), t), out var merged);
            output = merged is null ? default : _assemble(merged);
            return value;
        }

        /// <summary>
        /// <see cref="Evaluate(Tensor[], Tensor, Func{TOutput, Tensor, Tensor})"/> for a forward that also takes plain
        /// arguments: all of forward's arguments in its order (see <see cref="Forward(object[])"/>).
        /// </summary>
        public Tensor Evaluate(object?[] arguments, Tensor target, Func<TOutput, Tensor, Tensor> loss) => Evaluate(arguments, target, loss, out _);

        /// <summary><see cref="Evaluate(object[], Tensor, Func{TOutput, Tensor, Tensor})"/> that also gives the batch's output on the last stage's rank.</summary>
        public Tensor Evaluate(object?[] arguments, Tensor target, Func<TOutput, Tensor, Tensor> loss, out TOutput? output)
        {
            if (loss is null) throw new ArgumentNullException(nameof(loss));
            var value = EvaluateOutputs(arguments, target, (outputs, t) => loss(_assemble(outputs), t), out var merged);
            output = merged is null ? default : _assemble(merged);
            return value;
        }
    }
}
