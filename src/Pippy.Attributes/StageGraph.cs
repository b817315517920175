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

    /// <summary>One stage: its inputs in the order its <c>forward</c> takes them, its outputs in the order it returns them.</summary>
    public sealed class StageSpec
    {
        public StageSpec(int index, IReadOnlyList<StageInput> inputs, IReadOnlyList<string> outputs, IReadOnlyList<string> modules)
        {
            Index = index;
            Inputs = inputs;
            Outputs = outputs;
            Modules = modules;
        }

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

    /// <summary>
    /// The stage graph of a pipeline model, emitted by the generator: which values each stage takes and makes, and
    /// so which values go where. The last stage's single output is the model's output.
    /// </summary>
    public sealed class StageGraph
    {
        public StageGraph(string modelName, IReadOnlyList<string> modelInputs, IReadOnlyList<StageSpec> stages)
        {
            if (stages.Count == 0) throw new ArgumentException("A pipeline has at least one stage.", nameof(stages));
            ModelName = modelName;
            ModelInputs = modelInputs;
            Stages = stages;
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
        public IReadOnlyList<string> ModelInputs { get; }
        public IReadOnlyList<StageSpec> Stages { get; }
        public IReadOnlyList<ValueEdge> Edges { get; }
        public int StageCount => Stages.Count;

        public IEnumerable<ValueEdge> EdgesFrom(int stage) => Edges.Where(e => e.FromStage == stage);
        public IEnumerable<ValueEdge> EdgesTo(int stage) => Edges.Where(e => e.ToStage == stage);

        /// <summary>The stage-level links for scheduling, with stage k on rank k.</summary>
        public StageLinks Links() =>
            new StageLinks(StageCount, Edges.Select(e => (e.FromStage, e.ToStage)), Enumerable.Range(0, StageCount).ToArray());
    }
}
