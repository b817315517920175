namespace Pippy.Generators.Model
{
    /// <summary>What the parser reads off a [Pipeline] class: everything the planner and emitter need, as plain data.</summary>
    internal sealed record PipelineModelSpec(
        TypeSpec Type,
        int Schedule,
        int Microbatches,
        LocationInfo? AttributeLocation,
        EquatableArray<VariableSpec> Inputs,
        VariableSpec Output,
        EquatableArray<MemberSpec> Modules,
        EquatableArray<VariableSpec> Variables,
        EquatableArray<StatementSpec> Statements);

    /// <summary>
    /// The model class: where to emit the partial declaration. <see cref="ContainingTypeDeclarations"/> holds
    /// the headers of enclosing types (outermost first), e.g. <c>partial class Outer</c>.
    /// </summary>
    internal sealed record TypeSpec(string Namespace, string Name, string FullyQualifiedName, string HintName, EquatableArray<string> ContainingTypeDeclarations);

    /// <summary>A variable of forward (a parameter or a local): its type decides whether it may cross a stage boundary.</summary>
    internal sealed record VariableSpec(string Name, string Type, bool IsTensor);

    /// <summary>A submodule field or property of the model.</summary>
    internal sealed record MemberSpec(string Name, string Type, bool IsSplitEnd, bool IsModule, LocationInfo? Location);

    /// <summary>
    /// One top-level statement of forward with its data flow (from Roslyn's AnalyzeDataFlow) and its code as the
    /// stage class will hold it (members of the model other than submodules reached through the model).
    /// </summary>
    internal sealed record StatementSpec(
        string Code,
        EquatableArray<string> FlowsIn,
        EquatableArray<string> Written,
        EquatableArray<string> AlwaysAssigned,
        EquatableArray<string> Modules,
        bool Returns,
        bool UsesModel,
        LocationInfo? Location);

    /// <summary>The parser's result: a spec when the class is usable, and the diagnostics found on the way.</summary>
    internal sealed record ParseResult(PipelineModelSpec? Spec, EquatableArray<DiagnosticInfo> Diagnostics);
}
