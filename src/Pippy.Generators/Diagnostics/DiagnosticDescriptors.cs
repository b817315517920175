using Pippy.Schedules;

namespace Pippy.Generators.Diagnostics
{
    /// <summary>
    /// Every diagnostic the generator reports, each with a message that names the problem and the fix and a help link
    /// into docs/diagnostics.md. Each has a test in tests/GeneratorSnapshots/DiagnosticTests.cs.
    /// </summary>
    internal static class DiagnosticDescriptors
    {
        private const string Category = "Pippy";

        private static DiagnosticDescriptor Create(string id, string title, string message, DiagnosticSeverity severity = DiagnosticSeverity.Error) =>
            new(id, title, message, Category, severity, isEnabledByDefault: true, helpLinkUri: $"docs/diagnostics.md#{id.ToLowerInvariant()}");

        public static readonly DiagnosticDescriptor InternalError = Create(
            "PIPPY0000", "The Pippy generator failed",
            "The Pippy generator failed on '{0}' and generated nothing for it: {1}. This is a bug in Pippy; please report it with the model's forward.");

        public static readonly DiagnosticDescriptor NotPartial = Create(
            "PIPPY0001", "Pipeline model must be partial",
            "'{0}' must be declared partial (and so must every type that contains it): the generator adds the Pipeline and stage classes to it");

        public static readonly DiagnosticDescriptor NotAModule = Create(
            "PIPPY0002", "Pipeline model must be a TorchSharp module",
            "'{0}' must derive from TorchSharp.torch.nn.Module<...> to be a [Pipeline] model");

        public static readonly DiagnosticDescriptor NoForward = Create(
            "PIPPY0003", "Pipeline model has no forward",
            "'{0}' has no 'forward' override with a body: the stages are cut from the statements of forward");

        public static readonly DiagnosticDescriptor SplitEndNotUsed = Create(
            "PIPPY0004", "[SplitEnd] or [SplitBegin] member is not used in forward",
            "[{2}] member '{0}' is not used by any statement of forward{1}, so it marks no split point; call it in forward or remove the attribute");

        public static readonly DiagnosticDescriptor EmptyStage = Create(
            "PIPPY0005", "A stage would be empty",
            "Stage {0} of '{1}' would have no statements: {2}");

        public static readonly DiagnosticDescriptor NonTensorCrossesBoundary = Create(
            "PIPPY0006", "Only tensors can cross a stage boundary",
            "'{0}' of type {1} flows from {2} into stage {3}, but only torch.Tensor values can be sent between stages; compute it inside stage {3} or make it a tensor");

        public static readonly DiagnosticDescriptor UnsupportedSignature = Create(
            "PIPPY0007", "Unsupported forward signature",
            "forward's {0} has type {1}; a pipeline's inputs must be torch.Tensor (or Tensor? when optional) or a plain value given to every stage that reads it (bool, char, an integer type, float, double, string or an enum), and its output a torch.Tensor or a tuple of 2 to 4 tensors; pass other data as tensors, or keep it in a field of the model");

        public static readonly DiagnosticDescriptor SharedModuleReplicated = Create(
            "PIPPY0008", "Submodule replicated on several stages",
            "Submodule '{0}' is used in stages {1}: each of them holds a copy, the lowest stage's values are broadcast when the pipeline is built, and the copies' gradients are summed after every step",
            DiagnosticSeverity.Info);

        public static readonly DiagnosticDescriptor ReturnBeforeLastStage = Create(
            "PIPPY0009", "Return before the last stage",
            "This statement returns from forward inside stage {0} of '{1}', but only the last stage may return; move the return after the last split point");

        public static readonly DiagnosticDescriptor InvalidSchedule = Create(
            "PIPPY0010", "Invalid [Pipeline] schedule option",
            "The {0} schedule of '{1}' is invalid: {2}");

        public static readonly DiagnosticDescriptor SingleStage = Create(
            "PIPPY0011", "Pipeline has a single stage",
            "'{0}' has no split point ([SplitEnd], [SplitBegin] or [SplitInto] member, or PipelineSplit.Here() statement), so the pipeline has one stage and runs on one rank; mark the submodule that ends each stage with [SplitEnd]",
            DiagnosticSeverity.Warning);

        public static readonly DiagnosticDescriptor GenericModel = Create(
            "PIPPY0012", "Generic pipeline models are not supported",
            "'{0}' is generic; a [Pipeline] model must be a non-generic class");

        public static readonly DiagnosticDescriptor SplitEndNotAModule = Create(
            "PIPPY0013", "[SplitEnd] or [SplitBegin] on a member that is not a submodule",
            "[{2}] member '{0}' has type {1}, which is not a TorchSharp module; put [{2}] on the submodule whose call {3} the stage");

        public static readonly DiagnosticDescriptor SplitInsideBranch = Create(
            "PIPPY0014", "Split point inside a branch or loop",
            "[{1}] member '{0}' is called inside an if, switch or loop, so the stage boundary would depend on run-time control flow; move the call out of the branch or put [{1}] on a submodule called at the top level of forward");

        public static readonly DiagnosticDescriptor SplitEndUsedTwice = Create(
            "PIPPY0015", "[SplitEnd] or [SplitBegin] member used more than once",
            "[{2}] member '{0}' is used {1} times in forward, so the split point is ambiguous; put [{2}] on a submodule that forward calls once");

        public static readonly DiagnosticDescriptor UnsupportedForward = Create(
            "PIPPY0016", "Unsupported construct in forward",
            "forward uses {0}, which a pipeline cannot split; {1}");

        public static readonly DiagnosticDescriptor LonelyTiedWeight = Create(
            "PIPPY0017", "[TiedWeight] group needs two members",
            "[TiedWeight(\"{0}\")] has {1} member(s) used in forward; a tie needs at least two submodules that forward uses, e.g. the embedding and the output head");

        public static readonly DiagnosticDescriptor TiedWeightNotAModule = Create(
            "PIPPY0018", "[TiedWeight] on a member that is not a submodule",
            "[TiedWeight] member '{0}' has type {1}, which is not a TorchSharp module; put it on the submodules whose parameter is tied");

        public static readonly DiagnosticDescriptor SplitIntoNotAList = Create(
            "PIPPY0019", "[SplitInto] on a member that is not a module list",
            "[SplitInto] member '{0}' has type {1}; it must be a TorchSharp ModuleList<T> whose blocks a loop in forward runs, or a Sequential whose forward one statement calls");

        public static readonly DiagnosticDescriptor SplitIntoTooFew = Create(
            "PIPPY0020", "[SplitInto] needs at least two stages",
            "[SplitInto({1})] on '{0}' must divide the list into at least 2 stages; use [SplitEnd] to end a stage after the whole list");

        public static readonly DiagnosticDescriptor SplitIntoTooMany = Create(
            "PIPPY0023", "[SplitInto] asks for too many stages",
            // The limit is the schedule library's (ScheduleBuilder.MaxStages): more stages than any pipeline runs, which
            // also keeps a typo from planning billions of stages.
            $"[SplitInto({{1}})] on '{{0}}' asks for more than {ScheduleBuilder.MaxStages} stages; a pipeline has one stage per rank or a few, so use a count near the number of ranks");

        public static readonly DiagnosticDescriptor SplitIntoNotOneLoop = Create(
            "PIPPY0021", "[SplitInto] list must be run by one loop",
            "[SplitInto] list '{0}' must be used by exactly one top-level foreach or for statement of forward (a Sequential: by one statement 'x = {0}.forward(x);' or 'return {0}.forward(x);'), which is divided among the stages; it is {1}");

        public static readonly DiagnosticDescriptor ScheduleFileNotFound = Create(
            "PIPPY0022", "Schedule file not found",
            "[Pipeline(ScheduleFile = \"{0}\")] names no file of the project's AdditionalFiles; add <AdditionalFiles Include=\"{0}\" /> to the project file");

        public static readonly DiagnosticDescriptor ForwardEndReachable = Create(
            "PIPPY0024", "forward can end without a return",
            "forward of '{0}' can reach its end without returning, so the last stage would have no output to send; end every path of forward with a return of its output");

        public static readonly DiagnosticDescriptor UsingEndsWithStage = Create(
            "PIPPY0025", "using declaration would end with its stage",
            "'using var {0}' ({1}) is declared in stage {2}, so it would be disposed when stage {2} ends, not when forward ends, and the stages after it would run without it; put the statements that need it in a using block (using (...) {{ ... }}) inside one stage, or declare it after the last split point (tensors and torch.NewDisposeScope() may be declared with using anywhere)");

        public static readonly DiagnosticDescriptor BatchStatistics = Create(
            "PIPPY0026", "Batch statistics are computed per microbatch",
            "Submodule '{0}' of '{1}' is a {2}, which in training mode normalises by the statistics of the batch it is given; a pipeline gives it one microbatch at a time, so outputs, gradients and running statistics differ from the plain model's unless there is 1 microbatch. Put it in eval mode (frozen statistics: call eval() on it), use GroupNorm or LayerNorm, or set Microbatches = 1; or suppress this warning (<NoWarn>PIPPY0026</NoWarn>) if per-microbatch statistics are intended",
            DiagnosticSeverity.Warning);

        public static readonly DiagnosticDescriptor UnfollowableSubmoduleUse = Create(
            "PIPPY0028", "Submodules used where the generator cannot follow",
            "forward reaches {0}, which uses submodule(s) {1}, but the generator cannot follow the call there, so no stage would hold those submodules and no rank would train their parameters; {2}");

        public static readonly DiagnosticDescriptor SplitEndInMethodCalledTwice = Create(
            "PIPPY0027", "[SplitEnd] or [SplitBegin] member used through a method called more than once",
            "[{3}] member '{0}' is used inside {1}, which forward calls from {2} statements, so it is ambiguous {4} which one the stage {5}; call {1} from one statement of forward, or put [{3}] on a submodule that forward calls directly");

        public static readonly DiagnosticDescriptor SplitIntoSequentialWithOwnForward = Create(
            "PIPPY0029", "[SplitInto] on a Sequential that runs its own forward",
            "[SplitInto] member '{0}' is a {1}, which derives from Sequential and overrides forward; the stages would run its children one after the other and skip that forward's code; put its children in a plain Sequential (or a ModuleList run by a loop in the model's forward), or mark split points with [SplitEnd] on submodules the model's forward calls");

        public static readonly DiagnosticDescriptor RecomputeNotAModule = Create(
            "PIPPY0030", "[Recompute] on a member that is not a submodule",
            "[Recompute] member '{0}' has type {1}, which is not a TorchSharp module; put it on the submodule (or module list) whose activations are to be recomputed");

        public static readonly DiagnosticDescriptor RecomputeNotCalledInForward = Create(
            "PIPPY0031", "[Recompute] member is not called by forward's own code",
            "[Recompute] member '{0}' is {1}, so no call of it would be recomputed; call it in forward itself ('x = {0}.forward(x);', or a loop over the list), or remove the attribute");

        public static readonly DiagnosticDescriptor RecomputeUnsupportedCall = Create(
            "PIPPY0032", "[Recompute] call that cannot be recomputed",
            "The call '{0}' of [Recompute] member '{1}' {2}; a recomputed block takes tensors and returns one tensor: pass only tensors (a non-tensor setting can be a field of the block) or remove the attribute");

        public static readonly DiagnosticDescriptor MisplacedSplitMarker = Create(
            "PIPPY0033", "PipelineSplit.Here() outside the top level of a pipeline's forward",
            "PipelineSplit.Here() is {0}, where it marks no split point; it ends a stage only as a statement of its own at the top level of a [Pipeline] model's forward body, between two statements: move it there or remove it");

        public static IReadOnlyList<DiagnosticDescriptor> All { get; } = new[]
        {
            InternalError, NotPartial, NotAModule, NoForward, SplitEndNotUsed, EmptyStage, NonTensorCrossesBoundary, UnsupportedSignature,
            SharedModuleReplicated, ReturnBeforeLastStage, InvalidSchedule, SingleStage, GenericModel, SplitEndNotAModule,
            SplitInsideBranch, SplitEndUsedTwice, UnsupportedForward, LonelyTiedWeight, TiedWeightNotAModule, SplitIntoNotAList,
            SplitIntoTooFew, SplitIntoNotOneLoop, ScheduleFileNotFound, SplitIntoTooMany, ForwardEndReachable,
            UsingEndsWithStage, BatchStatistics, UnfollowableSubmoduleUse, SplitEndInMethodCalledTwice, SplitIntoSequentialWithOwnForward,
            RecomputeNotAModule, RecomputeNotCalledInForward, RecomputeUnsupportedCall, MisplacedSplitMarker,
        };

        private static readonly Dictionary<string, DiagnosticDescriptor> ByIdMap = All.ToDictionary(d => d.Id);

        public static DiagnosticDescriptor ById(string id) => ByIdMap[id];
    }
}
