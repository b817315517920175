using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Schedules;

namespace Pippy
{
    /// <summary>Where one input of a stage comes from: an argument of the model's <c>forward</c>, or an output of an earlier stage.</summary>
    public sealed class StageInput
    {
        private StageInput(string name, int? fromStage, int index)
        {
            Name = name;
            FromStage = fromStage;
            Index = index;
        }

        /// <summary>The variable's name in <c>forward</c>.</summary>
        public string Name { get; }

        /// <summary>The producing stage, or null for an argument of <c>forward</c>.</summary>
        public int? FromStage { get; }

        /// <summary>The argument position of <c>forward</c>, or the output position of <see cref="FromStage"/>.</summary>
        public int Index { get; }

        public bool IsModelInput => FromStage is null;

        /// <summary>The <paramref name="argument"/>-th argument of the model's <c>forward</c>; every rank is given the inputs.</summary>
        public static StageInput ModelInput(string name, int argument) => new StageInput(name, null, argument);

        /// <summary>The <paramref name="output"/>-th output of stage <paramref name="stage"/>.</summary>
        public static StageInput Activation(string name, int stage, int output) => new StageInput(name, stage, output);

        public override string ToString() => FromStage is int s ? $"{Name} (stage {s} output {Index})" : $"{Name} (model input {Index})";
    }

    /// <summary>
    /// A plain (non-tensor) argument of the model's <c>forward</c>: a flag, a number, a string or an enum. It is not
    /// divided into microbatches nor sent between ranks: every rank is given it with the inputs, and every stage that
    /// reads it reads the same value for the whole step.
    /// </summary>
    public sealed class ModelArgument
    {
        public ModelArgument(string name, int position, Type type)
        {
            Name = name;
            Position = position;
            Type = type;
        }

        /// <summary>The parameter's name in <c>forward</c>.</summary>
        public string Name { get; }

        /// <summary>The parameter's position among all of <c>forward</c>'s parameters (tensors included).</summary>
        public int Position { get; }

        /// <summary>The parameter's type, which the value given to a step must have.</summary>
        public Type Type { get; }

        public override string ToString() => $"{Name} ({Type.Name}, argument {Position})";
    }

    /// <summary>One stage: its inputs in the order its <c>forward</c> takes them, its outputs in the order it returns them.</summary>
    public sealed class StageSpec
    {
        public StageSpec(int index, IReadOnlyList<StageInput> inputs, IReadOnlyList<string> outputs, IReadOnlyList<string> modules,
            IReadOnlyList<string>? arguments = null)
        {
            Index = index;
            Inputs = inputs;
            Outputs = outputs;
            Modules = modules;
            Arguments = arguments ?? Array.Empty<string>();
        }

        /// <summary>The plain arguments of the model's <c>forward</c> this stage reads (see <see cref="ModelArgument"/>).</summary>
        public IReadOnlyList<string> Arguments { get; }

        public int Index { get; }
        public IReadOnlyList<StageInput> Inputs { get; }
        public IReadOnlyList<string> Outputs { get; }

        /// <summary>The model's submodule members this stage calls (for logs).</summary>
        public IReadOnlyList<string> Modules { get; }
    }

    /// <summary>One value sent from one stage to another: the <see cref="Id"/> keys its messages.</summary>
    public sealed class ValueEdge
    {
        public ValueEdge(int id, string name, int fromStage, int fromOutput, int toStage, int toInput)
        {
            Id = id;
            Name = name;
            FromStage = fromStage;
            FromOutput = fromOutput;
            ToStage = toStage;
            ToInput = toInput;
        }

        public int Id { get; }
        public string Name { get; }
        public int FromStage { get; }
        public int FromOutput { get; }
        public int ToStage { get; }
        public int ToInput { get; }

        public override string ToString() => $"{Name}: stage {FromStage} -> stage {ToStage}";
    }

    /// <summary>One copy of a replicated parameter set: on which stage, and which of its parameters.</summary>
    public sealed class ParameterReplica
    {
        public ParameterReplica(int stage, string path, bool wholeModule)
        {
            Stage = stage;
            Path = path;
            WholeModule = wholeModule;
        }

        public int Stage { get; }

        /// <summary>A submodule member name (all its parameters) or a full parameter name such as <c>head.weight</c>.</summary>
        public string Path { get; }

        /// <summary>True when <see cref="Path"/> names a submodule whose every parameter is replicated.</summary>
        public bool WholeModule { get; }

        public override string ToString() => $"stage {Stage}: {Path}{(WholeModule ? ".*" : "")}";
    }

    /// <summary>
    /// Parameters that live on several stages: a submodule used by more than one stage, or a [TiedWeight] group. The
    /// runtime broadcasts them from the lowest stage when the pipeline is built and sums their gradients across the
    /// replicas after every step, so every copy stays the one parameter of the plain model.
    /// </summary>
    public sealed class ReplicatedParameterGroup
    {
        public ReplicatedParameterGroup(string name, IReadOnlyList<ParameterReplica> replicas)
        {
            Name = name;
            Replicas = replicas;
        }

        public string Name { get; }
        public IReadOnlyList<ParameterReplica> Replicas { get; }

        public override string ToString() => $"{Name} ({string.Join("; ", Replicas)})";
    }

    /// <summary>
    /// The stage graph of a pipeline model, emitted by the generator: which values each stage takes and makes, and
    /// so which values go where. The last stage's single output is the model's output.
    /// </summary>
    public sealed class StageGraph
    {
        public StageGraph(
            string modelName, IReadOnlyList<string> modelInputs, IReadOnlyList<StageSpec> stages,
            IReadOnlyList<ReplicatedParameterGroup>? replicated = null, IReadOnlyList<ModelArgument>? arguments = null)
        {
            if (stages.Count == 0) throw new ArgumentException("A pipeline has at least one stage.", nameof(stages));
            ModelName = modelName;
            ModelInputs = modelInputs;
            Arguments = arguments ?? Array.Empty<ModelArgument>();
            Stages = stages;
            Replicated = replicated ?? Array.Empty<ReplicatedParameterGroup>();
            var edges = new List<ValueEdge>();
            foreach (var stage in stages)
            {
                for (int i = 0; i < stage.Inputs.Count; i++)
                {
                    var input = stage.Inputs[i];
                    if (input.FromStage is int from) edges.Add(new ValueEdge(edges.Count, input.Name, from, input.Index, stage.Index, i));
                }
            }
            Edges = edges;
        }

        public string ModelName { get; }
        /// <summary>The names of all of <c>forward</c>'s parameters, in order: tensors and plain arguments.</summary>
        public IReadOnlyList<string> ModelInputs { get; }

        /// <summary>The plain (non-tensor) arguments among <see cref="ModelInputs"/>.</summary>
        public IReadOnlyList<ModelArgument> Arguments { get; }
        public IReadOnlyList<StageSpec> Stages { get; }
        public IReadOnlyList<ValueEdge> Edges { get; }
        public IReadOnlyList<ReplicatedParameterGroup> Replicated { get; }
        public int StageCount => Stages.Count;

        /// <summary>The number of values forward returns (the last stage's outputs): one, or a tuple's arity.</summary>
        public int OutputCount => Stages[Stages.Count - 1].Outputs.Count;

        public IEnumerable<ValueEdge> EdgesFrom(int stage) => Edges.Where(e => e.FromStage == stage);
        public IEnumerable<ValueEdge> EdgesTo(int stage) => Edges.Where(e => e.ToStage == stage);

        /// <summary>The stage-level links for scheduling, with the stages placed on ranks as <paramref name="kind"/> places them.</summary>
        public StageLinks Links(ScheduleKind kind = ScheduleKind.GPipe, int stagesPerRank = 1) =>
            ScheduleBuilder.Links(kind, StageCount, stagesPerRank, Edges.Select(e => (e.FromStage, e.ToStage)));
    }
}
