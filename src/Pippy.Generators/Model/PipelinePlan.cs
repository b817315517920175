using Pippy.Schedules;

namespace Pippy.Generators.Model
{
    /// <summary>
    /// The planner's result: the stages, the replicated parameters and the schedule table, ready to emit.
    /// <see cref="Schedule"/> is the table's kind (<see cref="ScheduleKind.Custom"/> for a CSV file),
    /// <see cref="RankCount"/> its number of ranks (lines), and each stage's <see cref="StagePlan.Rank"/> the line
    /// that runs it, so the emitter never reads the table's text.
    /// </summary>
    internal sealed record PipelinePlan(
        TypeSpec Type,
        EquatableArray<VariableSpec> Inputs,
        OutputSpec Output,
        EquatableArray<StagePlan> Stages,
        EquatableArray<ReplicaGroupPlan> Replicated,
        ScheduleKind Schedule,
        int Microbatches,
        int RankCount,
        EquatableArray<string> ScheduleLines);

    /// <summary>
    /// One stage: the statements it runs, the rank that runs it in the build-time schedule table (<see cref="Rank"/>,
    /// as the table places it: one stage per rank, looped, in a V, or a CSV's rows) and the values it takes and makes.
    /// <see cref="Locals"/> are variables of forward declared before the stage (or forward's arguments) that the stage
    /// assigns without reading first.
    /// <see cref="Arguments"/> are forward's plain (non-tensor) arguments the stage reads, with their positions.
    /// <see cref="ReopenedScopes"/> are the <c>using var scope = torch.NewDisposeScope();</c> statements of earlier
    /// stages, which the stage opens again (forward's scope lasts to its end); <see cref="OpenScopes"/> the scope
    /// variables open when the stage returns (outermost first), out of which it moves its outputs.
    /// </summary>
    internal sealed record StagePlan(
        int Index,
        int Rank,
        int FirstStatement,
        int LastStatement,
        EquatableArray<StageInputPlan> Inputs,
        EquatableArray<VariableSpec> Locals,
        EquatableArray<VariableSpec> Outputs,
        EquatableArray<StageModulePlan> Modules,
        EquatableArray<string> Code,
        bool UsesModel,
        EquatableArray<string> ReopenedScopes = default,
        EquatableArray<string> OpenScopes = default,
        EquatableArray<StageInputPlan> Arguments = default);

    /// <summary>A submodule a stage holds: the model's member, or (for a [SplitInto] list) part <see cref="Part"/> of <see cref="Parts"/>.</summary>
    internal sealed record StageModulePlan(MemberSpec Member, int Part, int Parts)
    {
        public bool IsListPart => Parts > 0;
    }

    /// <summary>A stage input: a forward argument (<see cref="FromStage"/> = -1) or an output of an earlier stage.</summary>
    internal sealed record StageInputPlan(VariableSpec Variable, int FromStage, int Index);

    /// <summary>Parameters held by several stages: a shared submodule or a [TiedWeight] group.</summary>
    internal sealed record ReplicaGroupPlan(string Name, EquatableArray<ReplicaPlan> Replicas);

    internal sealed record ReplicaPlan(int Stage, string Path, bool WholeModule);

    internal sealed record PlanResult(PipelinePlan? Plan, EquatableArray<DiagnosticInfo> Diagnostics);
}
