using Pippy.Schedules;

namespace Pippy.Generators.Model
{
    /// <summary>
    /// What the parser reads off a [Pipeline] class: everything the planner and emitter need, as plain data.
    /// <see cref="Schedule"/> is the attribute's value as written (possibly not a defined kind, which the planner
    /// reports); a non-empty <see cref="ScheduleFile"/> makes the schedule <see cref="ScheduleKind.Custom"/> whatever it says.
    /// </summary>
    internal sealed record PipelineModelSpec(
        TypeSpec Type,
        ScheduleKind Schedule,
        int Microbatches,
        int StagesPerRank,
        string ScheduleFile,
        LocationInfo? AttributeLocation,
        EquatableArray<VariableSpec> Inputs,
        OutputSpec Output,
        EquatableArray<MemberSpec> Modules,
        EquatableArray<VariableSpec> Variables,
        EquatableArray<StatementSpec> Statements,
        EquatableArray<MethodUseSpec> UnreachedUses,
        EquatableArray<SplitMarkerSpec> SplitMarkers = default);

    /// <summary>
    /// A <c>PipelineSplit.Here();</c> statement of forward: the stage ends after statement <see cref="AfterStatement"/>
    /// (an index into <see cref="PipelineModelSpec.Statements"/>, which do not hold the marker; -1 when it comes first).
    /// </summary>
    internal sealed record SplitMarkerSpec(int AfterStatement, LocationInfo? Location);

    /// <summary>
    /// A submodule member used inside a method or property getter of the model rather than in forward itself:
    /// <see cref="Method"/> is the method as forward calls it (the first of a chain of calls), and
    /// <see cref="InBranch"/> says whether the use runs only on some paths (a branch at the call site in forward or in
    /// the method). <see cref="PipelineModelSpec.UnreachedUses"/> lists [SplitEnd] members used in methods that forward
    /// does not reach through a method the parser follows, for PIPPY0004's message.
    /// </summary>
    internal sealed record MethodUseSpec(string Member, string Method, bool InBranch);

    /// <summary>
    /// The model class: where to emit the partial declaration. <see cref="ContainingTypeDeclarations"/> holds
    /// the headers of enclosing types (outermost first), e.g. <c>partial class Outer</c>.
    /// </summary>
    /// <remarks>
    /// <see cref="FileUsings"/> and <see cref="NamespaceUsings"/> are the using directives of the file that declares
    /// forward (at the top, and inside its namespace): the stages' copies of forward's statements need them.
    /// </remarks>
    internal sealed record TypeSpec(
        string Namespace,
        string Name,
        string FullyQualifiedName,
        string HintName,
        EquatableArray<string> ContainingTypeDeclarations,
        EquatableArray<string> FileUsings,
        EquatableArray<string> NamespaceUsings);

    /// <summary>
    /// A variable of forward (a parameter or a local): its type decides whether it may cross a stage boundary.
    /// <see cref="IsPlainArgument"/> marks a parameter of forward of a plain type (bool, a number, string, an enum),
    /// which the runtime gives every stage that reads it.
    /// </summary>
    internal sealed record VariableSpec(string Name, string Type, bool IsTensor, bool IsPlainArgument = false);

    /// <summary>forward's result: its type as written in C#, and its parts (one tensor, or a tuple's elements).</summary>
    internal sealed record OutputSpec(string Type, EquatableArray<string> Names);

    /// <summary>
    /// A submodule field or property of the model and its annotations: [SplitEnd] (and [SplitBegin], <see cref="IsSplitBegin"/>); [TiedWeight] group and parameter
    /// (empty when untied); [SplitInto] stage count (0 when absent) with the list's element type; whether it is a
    /// TorchSharp <c>Sequential</c> (divided by its children, each a <c>Module&lt;Tensor, Tensor&gt;</c>).
    /// </summary>
    internal sealed record MemberSpec(
        string Name,
        string Type,
        bool IsSplitEnd,
        string TiedGroup,
        string TiedParameter,
        int SplitInto,
        string ElementType,
        LocationInfo? Location,
        bool IsSequential = false,
        bool IsSplitBegin = false);

    /// <summary>
    /// One top-level statement of forward with its data flow (from Roslyn's AnalyzeDataFlow) and its code as the
    /// stage class will hold it (members of the model other than submodules reached through the model).
    /// </summary>
    /// <remarks>
    /// <see cref="ModuleReferences"/> has one entry per use of a submodule member (so repeated calls show);
    /// <see cref="ModulesInBranches"/> those used inside an if, switch or loop of the statement;
    /// <see cref="MethodUses"/> the submodules the statement uses through the model's own methods and property getters
    /// (followed transitively), one entry per use, so they belong to the stage of this statement.
    /// <see cref="SequentialCall"/> names the Sequential member when the statement is <c>x = seq.forward(x);</c>, the
    /// one form a [SplitInto] Sequential can be divided in (<c>return seq.forward(x);</c> is read as that and <c>return x;</c>).
    /// </remarks>
    internal sealed record StatementSpec(
        string Code,
        EquatableArray<string> FlowsIn,
        EquatableArray<string> Written,
        EquatableArray<string> AlwaysAssigned,
        EquatableArray<string> Declared,
        EquatableArray<string> ModuleReferences,
        EquatableArray<string> ModulesInBranches,
        bool IsLoop,
        bool Returns,
        bool UsesModel,
        LocationInfo? Location,
        EquatableArray<MethodUseSpec> MethodUses,
        UsingDeclarationSpec? Using = null,
        string SequentialCall = "")
    {
        public bool Uses(string member) => ModuleReferences.Contains(member) || MethodUses.Any(u => u.Member == member);
    }

    /// <summary>
    /// A top-level <c>using var</c> declaration of forward: the variables it declares, what kind of value they hold,
    /// and the statement's code without the <c>using</c> keyword (for a tensor that leaves its stage, which the stage
    /// must not dispose). Its <c>Dispose</c> runs at the end of forward in the plain model, at the end of the stage's
    /// forward in a pipeline.
    /// </summary>
    internal sealed record UsingDeclarationSpec(EquatableArray<string> Names, UsingKind Kind, string CodeWithoutUsing, string Type);

    internal enum UsingKind
    {
        /// <summary>Tensors: disposed at the end of the stage unless they are the stage's outputs.</summary>
        Tensor,

        /// <summary><c>torch.NewDisposeScope()</c>: opened again by every later stage; outputs are moved out of it.</summary>
        DisposeScope,

        /// <summary>Anything else (a no_grad guard, a file): it would end with its stage, so only the last stage may declare one.</summary>
        Other,
    }

    /// <summary>An additional file of the project (a custom schedule's CSV): its name, path and text.</summary>
    internal sealed record AdditionalFileSpec(string Name, string Path, string Text);

    /// <summary>The parser's result: a spec when the class is usable, and the diagnostics found on the way.</summary>
    internal sealed record ParseResult(PipelineModelSpec? Spec, EquatableArray<DiagnosticInfo> Diagnostics);
}
