namespace Pippy.Generators.Model
{
    /// <summary>The planner's result: the stages and the schedule table, ready to emit.</summary>
    internal sealed record PipelinePlan(
        TypeSpec Type,
        EquatableArray<VariableSpec> Inputs,
        EquatableArray<StagePlan> Stages,
        int Schedule,
        string ScheduleName,
        int Microbatches,
        EquatableArray<string> ScheduleLines);

    /// <summary>One stage: the statements it runs and the values it takes and makes.</summary>
    internal sealed record StagePlan(
        int Index,
        int FirstStatement,
        int LastStatement,
        EquatableArray<StageInputPlan> Inputs,
        EquatableArray<VariableSpec> Outputs,
        EquatableArray<MemberSpec> Modules,
        EquatableArray<string> Code,
        bool UsesModel);

    /// <summary>A stage input: a forward argument (<see cref="FromStage"/> = -1) or an output of an earlier stage.</summary>
    internal sealed record StageInputPlan(VariableSpec Variable, int FromStage, int Index);

    internal sealed record PlanResult(PipelinePlan? Plan, EquatableArray<DiagnosticInfo> Diagnostics);
}
