using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;

namespace Pippy.Generators.Diagnostics
{
    /// <summary>Every diagnostic the generator reports. Each has a test in tests/GeneratorSnapshots/DiagnosticTests.cs.</summary>
    internal static class DiagnosticDescriptors
    {
        private const string Category = "Pippy";

        public static readonly DiagnosticDescriptor NotPartial = new(
            "PIPPY0001", "Pipeline model must be partial",
            "'{0}' must be declared partial (and so must every type that contains it): the generator adds the Pipeline and stage classes to it",
            Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

        public static readonly DiagnosticDescriptor NotAModule = new(
            "PIPPY0002", "Pipeline model must be a TorchSharp module",
            "'{0}' must derive from TorchSharp.torch.nn.Module<...> to be a [Pipeline] model",
            Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

        public static readonly DiagnosticDescriptor NoForward = new(
            "PIPPY0003", "Pipeline model has no forward",
            "'{0}' has no 'forward' override with a body: the stages are cut from the statements of forward",
            Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

        public static readonly DiagnosticDescriptor SplitEndNotUsed = new(
            "PIPPY0004", "[SplitEnd] member is not used in forward",
            "[SplitEnd] member '{0}' is not used by any top-level statement of forward, so it marks no split point; call it in forward or remove the attribute",
            Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

        public static readonly DiagnosticDescriptor EmptyStage = new(
            "PIPPY0005", "A stage would be empty",
            "Stage {0} of '{1}' would have no statements: {2}",
            Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

        public static readonly DiagnosticDescriptor NonTensorCrossesBoundary = new(
            "PIPPY0006", "Only tensors can cross a stage boundary",
            "'{0}' of type {1} flows from {2} into stage {3}, but only torch.Tensor values can be sent between stages; compute it inside stage {3} or make it a tensor",
            Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

        public static readonly DiagnosticDescriptor UnsupportedSignature = new(
            "PIPPY0007", "Unsupported forward signature",
            "forward's {0} has type {1}; a pipeline's inputs and output must be torch.Tensor",
            Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

        public static readonly DiagnosticDescriptor ModuleInSeveralStages = new(
            "PIPPY0008", "Submodule used by more than one stage",
            "Submodule '{0}' is used in stages {1}; sharing a submodule between stages is not supported yet: move its calls into one stage",
            Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

        public static readonly DiagnosticDescriptor ReturnBeforeLastStage = new(
            "PIPPY0009", "Return before the last stage",
            "This statement returns from forward inside stage {0} of '{1}', but only the last stage may return; move the return after the last [SplitEnd] call",
            Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

        public static readonly DiagnosticDescriptor InvalidSchedule = new(
            "PIPPY0010", "Invalid pipeline schedule",
            "The {0} schedule of '{1}' is invalid: {2}",
            Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

        public static readonly DiagnosticDescriptor SingleStage = new(
            "PIPPY0011", "Pipeline has a single stage",
            "'{0}' has no [SplitEnd] member, so the pipeline has one stage and runs on one rank; mark the submodule that ends each stage with [SplitEnd]",
            Category, DiagnosticSeverity.Warning, isEnabledByDefault: true);

        public static readonly DiagnosticDescriptor GenericModel = new(
            "PIPPY0012", "Generic pipeline models are not supported",
            "'{0}' is generic; a [Pipeline] model must be a non-generic class",
            Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

        public static readonly DiagnosticDescriptor SplitEndNotAModule = new(
            "PIPPY0013", "[SplitEnd] on a member that is not a submodule",
            "[SplitEnd] member '{0}' has type {1}, which is not a TorchSharp module; put [SplitEnd] on the submodule whose call ends the stage",
            Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

        public static IReadOnlyList<DiagnosticDescriptor> All { get; } = new[]
        {
            NotPartial, NotAModule, NoForward, SplitEndNotUsed, EmptyStage, NonTensorCrossesBoundary, UnsupportedSignature,
            ModuleInSeveralStages, ReturnBeforeLastStage, InvalidSchedule, SingleStage, GenericModel, SplitEndNotAModule,
        };

        private static readonly Dictionary<string, DiagnosticDescriptor> ByIdMap = All.ToDictionary(d => d.Id);

        public static DiagnosticDescriptor ById(string id) => ByIdMap[id];
    }
}
