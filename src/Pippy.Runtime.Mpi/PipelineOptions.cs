using System;
using System.Collections.Generic;
using System.Linq;
using static TorchSharp.torch;

namespace Pippy.Runtime
{
    /// <summary>Run-time choices for a pipeline.</summary>
    public sealed class PipelineOptions
    {
        /// <summary>
        /// How many microbatches each batch is split into. Null takes the count of the <c>[Pipeline]</c> attribute,
        /// whose table was built at build time; any other count is computed at start by the same schedule code.
        /// </summary>
        public int? Microbatches { get; init; }

        /// <summary>
        /// Another schedule than the <c>[Pipeline]</c> attribute's, computed at start by the same schedule code (null:
        /// the build-time table). With <see cref="StagesPerRank"/> it may also place the stages differently, e.g. an
        /// interleaved schedule with 2 stages per rank on half the ranks; an impossible choice is an error at start.
        /// </summary>
        public Pippy.Schedules.ScheduleKind? Schedule { get; init; }

        /// <summary>How many stages each rank runs (null: the <c>[Pipeline]</c> attribute's); the job then has stages / this ranks per pipeline.</summary>
        public int? StagesPerRank { get; init; }

        /// <summary>
        /// A schedule table of your own, chosen at start: the text of a CSV in torch.distributed.pipelining's format (one
        /// row per rank, one action per cell, e.g. <c>0F0,0F1,0B0,0B1</c>), as <c>[Pipeline(ScheduleFile = ...)]</c> takes
        /// at build time. Its rows say which rank runs which stage and its microbatch numbers how many microbatches there
        /// are; it is lowered, validated and simulated like the file, and a problem is an error at start naming the cell.
        /// Leave <see cref="Schedule"/>, <see cref="StagesPerRank"/> and <see cref="Microbatches"/> unset with it.
        /// </summary>
        public string? ScheduleCsv { get; init; }

        /// <summary>
        /// How many pipelines train side by side on different parts of each batch (data parallelism x pipeline
        /// parallelism). The job then has DataParallel x (pipeline ranks) ranks; consecutive ranks form a pipeline.
        /// Every rank is given the whole batch; each replica takes its share along each input's split dimension, and
        /// after each step the replicas' gradients are summed in one bucketed allreduce, so the step equals one on the
        /// whole batch. <c>Forward</c> returns each replica's share of the output.
        /// </summary>
        public int DataParallel { get; init; } = 1;

        /// <summary>
        /// Where the values of a model built with <see cref="Materialization.LazyModel.Construct{T}"/> (on the meta
        /// device) come from: each rank gives memory and values to its own stages' tensors only, so the other stages
        /// are never materialized there. Required for such a model; not used for a model built normally.
        /// </summary>
        public Materialization.WeightInitialization? Initialization { get; init; }

        /// <summary>
        /// Learn each message's dtype and shape on the first step (true, the default): later steps then post every
        /// receive ahead of the action that needs it, into buffers reused across microbatches and steps, and send only
        /// the tensor's memory. A value whose shape changes while the batch's shapes stay the same is then an error;
        /// set false for models whose boundary shapes depend on the data (every message then carries its shape).
        /// </summary>
        public bool LearnShapes { get; init; } = true;

        /// <summary>
        /// Ranks on one machine pass CPU tensors through shared memory (true, the default): the sender copies a tensor
        /// into a memory slot both processes map and the receiver uses it in place, one user-space copy instead of
        /// MPI's kernel copy on the receiver's core. Needs <see cref="LearnShapes"/>; ranks on other machines, and CUDA
        /// tensors, keep to MPI. PIPPY_SHARED_MEMORY=0 turns it off too.
        /// </summary>
        public bool SharedMemory { get; init; } = true;

        /// <summary>
        /// How <c>[SplitInto(k)]</c> module lists are divided among their stages: by parameter count (the default) or
        /// by measured time (<see cref="Balancing.StageBalance.ByTime(TorchSharp.torch.Tensor, int)"/>).
        /// </summary>
        public Balancing.StageBalance Balance { get; init; } = Balancing.StageBalance.ByParameters;

        /// <summary>
        /// The watchdog: how long a rank waits for a message (or for its sent messages to be taken) before it ends the
        /// job with a message naming what it waited for, from which stage, for which microbatch. Infinite turns it off.
        /// </summary>
        public TimeSpan ReceiveTimeout { get; init; } = TimeSpan.FromMinutes(10);

        /// <summary>
        /// Activation recomputation (activation checkpointing) for every stage: a stage's forward keeps only its inputs
        /// (and what it sends), and its backward first runs the forward again to rebuild the activations, once per
        /// microbatch (also when the backward is split into input and weight parts). Peak activation memory falls to
        /// the stage inputs of the microbatches in flight plus one microbatch's activations, for one more forward per
        /// microbatch (docs/large-models.md). Gradients are the plain model's: the random generator's state is put back
        /// for the second forward, so dropout draws the same masks. PIPPY_RECOMPUTE=1 turns it on too.
        /// </summary>
        public bool Recompute { get; init; }

        /// <summary>
        /// Recomputation for these stages only (by stage index), as <see cref="Recompute"/> does for all: for the stages
        /// that hold the most microbatches at once (the first ones under 1F1B), or the ones whose activations are largest.
        /// </summary>
        public IReadOnlyCollection<int>? RecomputeStages { get; init; }

        /// <summary>Rank 0 prints the plan (stages, schedule, microbatches) when the pipeline is built.</summary>
        public bool PrintPlan { get; init; } = true;

        /// <summary>
        /// When set, after each <c>Step</c> every rank writes the measured times of its actions to
        /// <c>pippy-trace-rank{R}.json</c> in this folder (Chrome trace format: open the files in ui.perfetto.dev).
        /// </summary>
        public string? TraceDirectory { get; init; }

        /// <summary>
        /// How each argument of forward, by parameter name, is divided among microbatches; an argument not named here
        /// is split along dimension 0. One <see cref="MicrobatchSpec.Custom(string, Func{Tensor[], int, Tensor[][]})"/>
        /// object given to several arguments divides them together.
        /// </summary>
        public IReadOnlyDictionary<string, MicrobatchSpec> Inputs { get; init; } = new Dictionary<string, MicrobatchSpec>();

        /// <summary>
        /// How <c>Step</c> combines the microbatches' losses. <see cref="LossReduction.Sum"/> (the default) adds them: use it
        /// with a sum-reduced loss. <see cref="LossReduction.Mean"/> weighs each by its share of the target's rows: use it
        /// with a mean-reduced loss. Either way the gradients are those of one backward of the whole batch.
        /// </summary>
        public LossReduction LossReduction { get; init; } = LossReduction.Sum;

        /// <summary>
        /// How the target of <c>Step</c> is divided among microbatches (split along dimension 0 by default); the same
        /// <see cref="MicrobatchSpec.Custom(string, Func{Tensor[], int, Tensor[][]})"/> object as inputs' divides it with them (it comes last).
        /// </summary>
        public MicrobatchSpec Target { get; init; } = MicrobatchSpec.Split(0);

        /// <summary>
        /// How each output of forward (by position: one for a tensor, several for a tuple) is merged from the
        /// microbatches' outputs; an output not given is concatenated along dimension 0.
        /// </summary>
        public IReadOnlyList<OutputMerge> Outputs { get; init; } = Array.Empty<OutputMerge>();
    }

    /// <summary>How the microbatches' losses make the batch's loss.</summary>
    public enum LossReduction
    {
        /// <summary>The batch's loss is the sum of the microbatches' (for sum-reduced losses).</summary>
        Sum,

        /// <summary>Each microbatch's loss is weighed by its rows / the batch's rows (for mean-reduced losses).</summary>
        Mean,
    }

    /// <summary>How one input is divided among microbatches.</summary>
    public sealed class MicrobatchSpec
    {
        private MicrobatchSpec(int? dimension, string? name = null, Func<Tensor[], int, Tensor[][]>? split = null)
        {
            Dimension = dimension;
            Name = name;
            Splitter = split;
        }

        /// <summary>The dimension split along, or null when every microbatch gets the whole tensor (or a custom function divides it).</summary>
        public int? Dimension { get; }

        /// <summary>The name of a <see cref="Custom"/> spec (null otherwise), for messages.</summary>
        public string? Name { get; }

        /// <summary>The function of a <see cref="Custom"/> spec (null otherwise).</summary>
        public Func<Tensor[], int, Tensor[][]>? Splitter { get; }

        /// <summary>True for a <see cref="Custom"/> spec.</summary>
        public bool IsCustom => Splitter is not null;

        /// <summary>
        /// Split along <paramref name="dimension"/> with <c>tensor_split</c> semantics: sizes differ by at most one,
        /// the first microbatches take the remainder (50 rows in 8 microbatches: 7, 7, 6, 6, 6, 6, 6, 6).
        /// </summary>
        public static MicrobatchSpec Split(int dimension = 0) => new(dimension);

        /// <summary>Every microbatch gets the whole tensor (weights, masks shared by all rows, ...).</summary>
        public static MicrobatchSpec Replicate { get; } = new(null);

        /// <summary>
        /// A division of your own, for values that cannot be cut along a dimension (EmbeddingBag's flat token list and
        /// its offsets, ragged batches). <paramref name="split"/> gets the batch's tensors and a count m and returns m
        /// parts, each with one tensor per value it was given, in the same order. Give the same spec object to several
        /// forward arguments in <see cref="PipelineOptions.Inputs"/> (and to <see cref="PipelineOptions.Target"/>) to
        /// divide them together: the function then gets their tensors in forward's parameter order, the target last
        /// (<c>Forward</c> has no target, so there it gets the inputs alone). With
        /// <see cref="PipelineOptions.DataParallel"/> = d it is called first with m = d (replica r takes part r), then on
        /// that share with m = microbatches, so it must divide any batch into any count it is asked for. A function that
        /// returns another number of parts, or of tensors in a part, is an error naming the values.
        /// </summary>
        /// <param name="name">What the division is called in messages and the plan (e.g. "whole bags").</param>
        /// <param name="split">(tensors, m) => m parts, each one tensor per given tensor.</param>
        public static MicrobatchSpec Custom(string name, Func<Tensor[], int, Tensor[][]> split)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(name);
            ArgumentNullException.ThrowIfNull(split);
            return new(null, name, split);
        }

        public override string ToString() => IsCustom ? $"divided by '{Name}'" : Dimension is int d ? $"split along dimension {d}" : "replicated";
    }

    /// <summary>How the microbatches' values of one output are merged into the batch's.</summary>
    public sealed class OutputMerge
    {
        private readonly Func<IReadOnlyList<Tensor>, Tensor> _merge;

        private OutputMerge(string name, Func<IReadOnlyList<Tensor>, Tensor> merge)
        {
            Name = name;
            _merge = merge;
        }

        public string Name { get; }

        /// <summary>Concatenate along <paramref name="dimension"/> (the inverse of <see cref="MicrobatchSpec.Split"/>).</summary>
        public static OutputMerge Concat(int dimension = 0) =>
            new($"concatenated along dimension {dimension}", parts => parts.Count == 1 ? parts[0] : cat(parts.ToArray(), dimension));

        /// <summary>Element-wise sum of the microbatches' values (e.g. per-microbatch statistics).</summary>
        public static OutputMerge Sum { get; } = new("summed", parts => parts.Skip(1).Aggregate(parts[0], (a, b) => a + b));

        /// <summary>A reducer of your own over the microbatches' values, in microbatch order.</summary>
        public static OutputMerge Custom(string name, Func<IReadOnlyList<Tensor>, Tensor> reducer) => new(name, reducer);

        public Tensor Merge(IReadOnlyList<Tensor> parts) => _merge(parts);

        public override string ToString() => Name;
    }
}
