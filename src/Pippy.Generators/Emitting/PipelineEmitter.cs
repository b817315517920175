using System.Globalization;
using Pippy.Schedules;

namespace Pippy.Generators.Emitting
{
    /// <summary>
    /// Writes a plan as C#: one file per stage (a TorchSharp module nested in the model that holds the model's own
    /// submodules and runs its share of forward) and one file with the model's <c>Pipeline</c> class (stage graph,
    /// schedule table, stage factory, <c>Build</c>).
    /// </summary>
    internal static class PipelineEmitter
    {
        private const string Tensor = "global::TorchSharp.torch.Tensor";
        private const string InputsParameter = "__inputs";
        private static readonly string GeneratedCode =
            $"[global::System.CodeDom.Compiler.GeneratedCode(\"Pippy.Generators\", \"{typeof(PipelineEmitter).Assembly.GetName().Version}\")]";

        public static IEnumerable<(string HintName, string Source)> Emit(PipelinePlan plan)
        {
            foreach (var stage in plan.Stages)
                yield return ($"{plan.Type.HintName}.Stage{stage.Index}.g.cs",
                    InModelType(plan.Type, Header(plan, $"stage {stage.Index} of {plan.Stages.Count} of {plan.Type.Name}"), w => EmitStage(w, plan, stage)));
            yield return ($"{plan.Type.HintName}.Pipeline.g.cs",
                InModelType(plan.Type, Header(plan, $"the Pipeline class of {plan.Type.Name}"), w => EmitPipeline(w, plan), withUsings: false));
        }

        /// <summary>What a reader of the file sees first: where it came from, the schedule, and the whole stage table.</summary>
        private static IEnumerable<string> Header(PipelinePlan plan, string what)
        {
            yield return $"// Pippy.NET generated {what}, cut from {plan.Type.Name}.forward at build time.";
            yield return EvenStagesPerRank(plan) is int perRank
                ? $"// Schedule: {plan.Schedule}, {plan.Microbatches} microbatches, {perRank} stage(s) per rank, {plan.RankCount} rank(s)."
                : $"// Schedule: {plan.Schedule}, {plan.Microbatches} microbatches, {plan.RankCount} rank(s) of {StageCounts(plan)} stage(s).";
            yield return "// Stages:";
            foreach (var stage in plan.Stages)
            {
                string modules = stage.Modules.Count == 0 ? "no submodules"
                    : string.Join(", ", stage.Modules.Select(m => m.IsListPart ? $"{m.Member.Name} (part {m.Part + 1} of {m.Parts})" : m.Member.Name));
                string inputs = string.Join(", ", stage.Inputs.Select(i => i.FromStage < 0 ? $"{i.Variable.Name} (forward's)" : $"{i.Variable.Name} (stage {i.FromStage})")
                    .Concat(stage.Arguments.Select(a => $"{a.Variable.Name} (forward's, plain)")));
                string outputs = stage.Index == plan.Stages.Count - 1 ? "the output" : string.Join(", ", stage.Outputs.Select(o => o.Name));
                yield return $"//   {stage.Index} on rank {stage.Rank}: statements {stage.FirstStatement + 1}-{stage.LastStatement + 1}, {modules}; in: {inputs}; out: {outputs}";
            }
        }

        /// <summary>The number of stages each rank runs in the planned table, in rank order.</summary>
        private static IEnumerable<int> StagesOfEachRank(PipelinePlan plan) =>
            Enumerable.Range(0, plan.RankCount).Select(rank => plan.Stages.Count(s => s.Rank == rank));

        /// <summary>The stages per rank when every rank runs as many, as every computed schedule places them; null for a custom table that does not.</summary>
        private static int? EvenStagesPerRank(PipelinePlan plan) =>
            StagesOfEachRank(plan).Distinct().ToList() is { Count: 1 } counts ? counts[0] : null;

        /// <summary>The stages per rank (<c>2</c>), or each rank's number of stages where they differ (<c>2, 1</c>).</summary>
        private static string StageCounts(PipelinePlan plan) =>
            EvenStagesPerRank(plan) is int even ? even.ToString(CultureInfo.InvariantCulture) : string.Join(", ", StagesOfEachRank(plan));

        /// <summary>Where the planned table runs the stage: its rank, and the other stages on that rank.</summary>
        private static string Placement(PipelinePlan plan, StagePlan stage)
        {
            var others = plan.Stages.Where(s => s.Rank == stage.Rank && s.Index != stage.Index).Select(s => s.Index.ToString(CultureInfo.InvariantCulture)).ToList();
            string with = others.Count == 0 ? ""
                : others.Count == 1 ? $", with stage {others[0]}"
                : $", with stages {string.Join(", ", others.Take(others.Count - 1))} and {others[others.Count - 1]}";
            return $"In the build-time {plan.Schedule} table, pipeline rank {stage.Rank} runs it{with}.";
        }

        /// <summary>A file holding <paramref name="body"/> inside the model's type, with the model file's usings for copied code.</summary>
        private static string InModelType(TypeSpec type, IEnumerable<string> header, Action<SourceWriter> body, bool withUsings = true)
        {
            var w = new SourceWriter();
            w.Line("// <auto-generated/>");
            foreach (var line in header) w.Line(line);
            w.Line("#nullable enable").Line();
            if (withUsings && type.FileUsings.Count > 0)
            {
                foreach (var directive in type.FileUsings) w.Line(directive);
                w.Line();
            }
            if (type.Namespace.Length > 0) w.Open($"namespace {type.Namespace}");
            if (withUsings && type.NamespaceUsings.Count > 0)
            {
                foreach (var directive in type.NamespaceUsings) w.Line(directive);
                w.Line();
            }
            foreach (var containing in type.ContainingTypeDeclarations) w.Open(containing);
            w.Open($"partial class {type.Name}");
            body(w);
            w.Close();
            foreach (var _ in type.ContainingTypeDeclarations) w.Close();
            if (type.Namespace.Length > 0) w.Close();
            return w.ToString();
        }

        private static void EmitStage(SourceWriter w, PipelinePlan plan, StagePlan stage)
        {
            string Describe(StageInputPlan i) => i.FromStage < 0 ? $"{i.Variable.Name} (argument of forward)" : $"{i.Variable.Name} (from stage {i.FromStage})";
            bool isLast = stage.Index == plan.Stages.Count - 1;
            string takes = stage.Inputs.Count + stage.Arguments.Count == 0 ? "nothing"
                : string.Join(", ", stage.Inputs.Select(Describe).Concat(stage.Arguments.Select(a => $"{a.Variable.Name} (plain argument of forward)")));
            string gives = isLast ? "the model's output" : string.Join(", ", stage.Outputs.Select(o => o.Name));
            var parts = stage.Modules.Where(m => m.IsListPart).Select(m => $" Runs part {m.Part + 1} of {m.Parts} of {m.Member.Name}.");
            w.Line("/// <summary>");
            w.Line($"/// Stage {stage.Index} of {plan.Stages.Count} of <see cref=\"{plan.Type.Name}\"/>: statements {stage.FirstStatement + 1} to {stage.LastStatement + 1} of forward.");
            w.Line($"/// Takes {takes}; returns {gives}.{string.Concat(parts)}");
            w.Line($"/// {Placement(plan, stage)}");
            w.Line("/// </summary>");
            w.Line(GeneratedCode);
            w.Open($"public sealed partial class Stage{stage.Index} : global::Pippy.Runtime.PipelineStage");
            if (stage.UsesModel) w.Line($"private readonly {plan.Type.FullyQualifiedName} {Parsing.StageCodeRewriter.ModelField};");
            foreach (var module in stage.Modules) w.Line($"private readonly {FieldType(module)} {module.Member.Name};");
            w.Line();

            w.Line($"/// <summary>Takes the submodules of stage {stage.Index} from <paramref name=\"model\"/>: the stage shares their parameters.</summary>");
            w.Open($"public Stage{stage.Index}({plan.Type.FullyQualifiedName} model) : base(\"{plan.Type.Name}.Stage{stage.Index}\", {stage.Index})");
            if (stage.UsesModel) w.Line($"{Parsing.StageCodeRewriter.ModelField} = model;");
            foreach (var module in stage.Modules)
            {
                string name = module.Member.Name;
                w.Line(module.IsListPart
                    ? $"{name} = new {FieldType(module)}({Quote(name)}, model.{name}, parts: {module.Parts}, part: {module.Part});"
                    : $"{name} = model.{name};");
            }
            foreach (var module in stage.Modules) w.Line($"register_module({Quote(module.Member.Name)}, {module.Member.Name});");
            w.Close();
            w.Line();

            w.Line($"/// <summary>Runs statements {stage.FirstStatement + 1} to {stage.LastStatement + 1} of <see cref=\"{plan.Type.Name}.forward\"/> on this stage's inputs, in the order of its spec; returns its outputs.</summary>");
            w.Open($"public override {Tensor}[] forward({Tensor}[] {InputsParameter})");
            w.Line($"CheckInputCount({InputsParameter}, {stage.Inputs.Count});");
            for (int i = 0; i < stage.Inputs.Count; i++)
                w.Line($"{stage.Inputs[i].Variable.Type} {stage.Inputs[i].Variable.Name} = {InputsParameter}[{i}];");
            foreach (var argument in stage.Arguments)
                w.Line($"{argument.Variable.Type} {argument.Variable.Name} = Argument<{argument.Variable.Type}>({argument.Index});");
            foreach (var local in stage.Locals) w.Line($"{local.Type} {local.Name} = default!;");
            if (stage.ReopenedScopes.Count > 0)
            {
                w.Line("// forward's dispose scope(s), opened by an earlier stage, last to the end of forward: opened again here.");
                foreach (var scope in stage.ReopenedScopes) w.Lines(scope);
            }
            foreach (var statement in stage.Code) w.Lines(statement);
            if (!isLast && stage.OpenScopes.Count > 0 && stage.Outputs.Count > 0)
            {
                w.Line("// The outputs leave the stage: out of forward's dispose scope(s), into the caller's.");
                foreach (var output in stage.Outputs)
                    foreach (var scope in stage.OpenScopes.Reverse())
                        w.Line($"if ({scope}.Contains({output.Name})) {scope}.MoveToOuter({output.Name});");
            }
            if (!isLast) w.Line($"return new {Tensor}[] {{ {string.Join(", ", stage.Outputs.Select(o => o.Name))} }};");
            w.Close();
            w.Close();
        }

        private static void EmitPipeline(SourceWriter w, PipelinePlan plan)
        {
            string Strings(IEnumerable<string> items) => $"new string[] {{ {string.Join(", ", items.Select(Quote))} }}";
            int stageCount = plan.Stages.Count;

            w.Line("/// <summary>");
            int ranks = plan.RankCount;
            string perRank = EvenStagesPerRank(plan) is int even ? $", {even} per rank" : $" of {StageCounts(plan)} stages";
            w.Line($"/// The pipeline of <see cref=\"{plan.Type.Name}\"/>, planned at build time: {stageCount} stage{(stageCount == 1 ? "" : "s")} on {ranks} rank{(ranks == 1 ? "" : "s")}{perRank};");
            w.Line("/// which rank runs which stage is the <see cref=\"Schedule\"/>'s placement. PipelineOptions may choose another schedule or");
            w.Line("/// stage placement at start, and PipelineOptions.DataParallel runs several such pipelines side by side.");
            w.Line("/// </summary>");
            w.Line(GeneratedCode);
            w.Open("public static class Pipeline");
            w.Line("/// <summary>The number of stages. A pipeline takes StageCount / (stages per rank) MPI ranks, and a job that many times PipelineOptions.DataParallel.</summary>");
            w.Line($"public const int StageCount = {stageCount};");
            w.Line();

            w.Line("/// <summary>Which values each stage takes and makes.</summary>");
            w.Line("public static global::Pippy.StageGraph Graph { get; } = new global::Pippy.StageGraph(");
            w.Line($"    {Quote(plan.Type.Name)},");
            w.Line($"    {Strings(plan.Inputs.Select(i => i.Name))},");
            w.Line("    new global::Pippy.StageSpec[]");
            w.Line("    {");
            foreach (var stage in plan.Stages)
            {
                var inputs = stage.Inputs.Select(i => i.FromStage < 0
                    ? $"global::Pippy.StageInput.ModelInput({Quote(i.Variable.Name)}, {i.Index})"
                    : $"global::Pippy.StageInput.Activation({Quote(i.Variable.Name)}, stage: {i.FromStage}, output: {i.Index})");
                var outputs = stage.Index == stageCount - 1 ? plan.Output.Names : stage.Outputs.Select(o => o.Name);
                w.Line($"        new global::Pippy.StageSpec({stage.Index},");
                w.Line($"            new global::Pippy.StageInput[] {{ {string.Join(", ", inputs)} }},");
                w.Line($"            {Strings(outputs)},");
                w.Line(stage.Arguments.Count == 0
                    ? $"            {Strings(stage.Modules.Select(m => m.Member.Name))}),"
                    : $"            {Strings(stage.Modules.Select(m => m.Member.Name))},");
                if (stage.Arguments.Count > 0) w.Line($"            arguments: {Strings(stage.Arguments.Select(a => a.Variable.Name))}),");
            }
            // The plain arguments of forward (not tensors): their positions and types, which the runtime checks.
            var arguments = plan.Inputs.Select((input, position) => (input, position)).Where(a => a.input.IsPlainArgument).ToList();
            string end = arguments.Count == 0 ? ");" : ",";
            if (plan.Replicated.Count == 0)
            {
                w.Line("    }" + end);
            }
            else
            {
                w.Line("    },");
                w.Line("    new global::Pippy.ReplicatedParameterGroup[]");
                w.Line("    {");
                foreach (var group in plan.Replicated)
                {
                    var replicas = group.Replicas.Select(r => $"new global::Pippy.ParameterReplica({r.Stage}, {Quote(r.Path)}, wholeModule: {(r.WholeModule ? "true" : "false")})");
                    w.Line($"        new global::Pippy.ReplicatedParameterGroup({Quote(group.Name)}, new global::Pippy.ParameterReplica[] {{ {string.Join(", ", replicas)} }}),");
                }
                w.Line("    }" + end);
            }
            if (arguments.Count > 0)
            {
                var declared = arguments.Select(a => $"new global::Pippy.ModelArgument({Quote(a.input.Name)}, {a.position}, typeof({a.input.Type}))");
                w.Line($"    arguments: new global::Pippy.ModelArgument[] {{ {string.Join(", ", declared)} }});");
            }
            w.Line();

            w.Line("/// <summary>");
            w.Line($"/// The {plan.Schedule} table for {plan.Microbatches} microbatches, one line per rank ({plan.RankCount} ranks of {StageCounts(plan)} stage(s)), validated and simulated at build time.");
            w.Line(plan.Schedule == ScheduleKind.Custom
                ? "/// A custom table runs only as written: for another microbatch count give PipelineOptions.ScheduleCsv a table for it, or choose a computed PipelineOptions.Schedule."
                : "/// A run with another microbatch count computes its table with the same schedule code.");
            w.Line("/// </summary>");
            w.Line("public static global::Pippy.Schedules.ScheduleTable Schedule { get; } = global::Pippy.Schedules.ScheduleTable.Parse(");
            w.Line($"    global::Pippy.Schedules.ScheduleKind.{plan.Schedule}, {stageCount}, {plan.Microbatches}, new string[]");
            w.Line("    {");
            foreach (var line in plan.ScheduleLines) w.Line($"        {Quote(line)},");
            w.Line("    });");
            w.Line();

            w.Line("/// <summary>Creates stage <paramref name=\"stage\"/>, sharing <paramref name=\"model\"/>'s submodules.</summary>");
            w.Line($"public static global::Pippy.Runtime.PipelineStage CreateStage({plan.Type.FullyQualifiedName} model, int stage) => stage switch");
            w.Line("{");
            foreach (var stage in plan.Stages) w.Line($"    {stage.Index} => new Stage{stage.Index}(model),");
            w.Line($"    _ => throw new global::System.ArgumentOutOfRangeException(nameof(stage), stage, {Quote($"{plan.Type.Name} has {stageCount} stages, 0 to {stageCount - 1}.")}),");
            w.Line("};");
            w.Line();

            w.Line("/// <summary>Every stage of <paramref name=\"model\"/>, to run the pipeline in one process.</summary>");
            w.Line($"public static global::Pippy.Runtime.PipelineStage[] CreateStages({plan.Type.FullyQualifiedName} model) =>");
            w.Line($"    new global::Pippy.Runtime.PipelineStage[] {{ {string.Join(", ", plan.Stages.Select(s => $"new Stage{s.Index}(model)"))} }};");
            w.Line();

            w.Line("/// <summary>Writes a pipeline checkpoint's stages into <paramref name=\"model\"/> and saves it as one plain TorchSharp file.</summary>");
            w.Line($"public static void MergeCheckpoint({plan.Type.FullyQualifiedName} model, string checkpointDirectory, string outputPath) =>");
            w.Line("    global::Pippy.Runtime.Checkpoints.PipelineCheckpoint.Merge(checkpointDirectory, model, stage => CreateStage(model, stage), outputPath);");
            w.Line();

            w.Line("/// <summary>");
            w.Line("/// Gives this MPI rank its stage of <paramref name=\"model\"/> and returns the runner that executes the schedule.");
            w.Line("/// Call it on every rank with a model built the same way (same seed).");
            w.Line("/// </summary>");
            string runner = $"global::Pippy.Runtime.PipelineRunner<{plan.Output.Type}>";
            string assemble = plan.Output.Names.Count == 1
                ? "outputs[0]"
                : "(" + string.Join(", ", Enumerable.Range(0, plan.Output.Names.Count).Select(i => $"outputs[{i}]")) + ")";
            var lists = plan.Stages.SelectMany(s => s.Modules).Where(m => m.IsListPart).Select(m => m.Member).GroupBy(m => m.Name).Select(g => g.First()).ToList();
            w.Line($"public static {runner} Build(");
            w.Line($"    {plan.Type.FullyQualifiedName} model,");
            w.Line("    global::Pippy.Runtime.PipelineEnvironment environment,");
            w.Line("    global::Pippy.Runtime.PipelineOptions? options = null) =>");
            w.Line($"    {runner}.Create(Graph, Schedule, stage => CreateStage(model, stage), outputs => {assemble}, environment, options{(lists.Count > 0 ? ", ModuleLists(model)" : "")});");
            if (lists.Count > 0)
            {
                const string listType = "global::System.Collections.Generic.IReadOnlyList<global::TorchSharp.torch.nn.Module>";
                w.Line();
                w.Line("/// <summary>The model's [SplitInto] module lists by name: what <c>StageBalance.ByTime</c> measures.</summary>");
                w.Line($"private static global::System.Collections.Generic.IReadOnlyDictionary<string, {listType}> ModuleLists({plan.Type.FullyQualifiedName} model) =>");
                w.Line($"    new global::System.Collections.Generic.Dictionary<string, {listType}>");
                w.Line("    {");
                foreach (var list in lists)
                    w.Line($"        [{Quote(list.Name)}] = global::System.Linq.Enumerable.ToArray<global::TorchSharp.torch.nn.Module>(model.{list.Name}{(list.IsSequential ? ".children()" : "")}),");
                w.Line("    };");
            }
            w.Close();
        }

        private static string FieldType(StageModulePlan module) =>
            !module.IsListPart ? module.Member.Type
            : module.Member.IsSequential ? "global::Pippy.Runtime.StageSequential"
            : $"global::Pippy.Runtime.StageModules<{module.Member.ElementType}>";

        private static string Quote(string text) =>
            "\"" + text.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
    }
}
