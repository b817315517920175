using System.Text;
using Microsoft.CodeAnalysis.Text;
using Pippy.Generators.Emitting;
using Pippy.Generators.Parsing;
using Pippy.Generators.Planning;

namespace Pippy.Generators
{
    /// <summary>
    /// The Pippy source generator. For every class marked <c>[Pippy.Pipeline]</c>: parse (symbols to plain specs),
    /// plan (stages, values, schedule), emit (stage classes, Pipeline class). Diagnostics are reported apart from
    /// the source output, so an unchanged plan is not re-emitted when only a location moved.
    /// </summary>
    [Generator(LanguageNames.CSharp)]
    public sealed class PipelineGenerator : IIncrementalGenerator
    {
        public const string PipelineAttributeName = "Pippy.PipelineAttribute";
        public const string SplitEndAttributeName = "Pippy.SplitEndAttribute";
        public const string SplitBeginAttributeName = "Pippy.SplitBeginAttribute";
        public const string SplitMarkerClassName = "Pippy.PipelineSplit";
        public const string SplitMarkerMethodName = "Here";
        public const string TiedWeightAttributeName = "Pippy.TiedWeightAttribute";
        public const string SplitIntoAttributeName = "Pippy.SplitIntoAttribute";
        public const string RecomputeAttributeName = "Pippy.RecomputeAttribute";

        public void Initialize(IncrementalGeneratorInitializationContext context)
        {
            var parsed = context.SyntaxProvider
                .ForAttributeWithMetadataName(PipelineAttributeName, static (node, _) => node is ClassDeclarationSyntax, PipelineParser.Parse)
                .WithTrackingName(TrackingNames.Parse);

            // Custom schedules come from the project's AdditionalFiles (CSV); only their names and text reach the planner.
            var scheduleFiles = context.AdditionalTextsProvider
                .Where(static file => file.Path.EndsWith(".csv", System.StringComparison.OrdinalIgnoreCase))
                .Select(static (file, ct) => new AdditionalFileSpec(System.IO.Path.GetFileName(file.Path), file.Path, file.GetText(ct)?.ToString() ?? ""))
                .Collect()
                .Select(static (files, _) => files.OrderBy(f => f.Path, System.StringComparer.Ordinal).ToEquatableArray());

            var planned = parsed
                .Combine(scheduleFiles)
                .Select(static (pair, _) => pair.Left.Spec is null || StagePlanner.HasErrors(pair.Left.Diagnostics)
                    ? new PlanResult(null, pair.Left.Diagnostics)
                    : Merge(pair.Left.Diagnostics, StagePlanner.Plan(pair.Left.Spec, pair.Right)))
                .WithTrackingName(TrackingNames.Plan);

            var plans = planned
                .Select(static (result, _) => result.Plan)
                .Where(static plan => plan is not null)
                .WithTrackingName(TrackingNames.Emit);

            context.RegisterSourceOutput(plans, static (spc, plan) =>
            {
                try
                {
                    // Emit everything first, so that a failure adds no partial set of files.
                    foreach (var (hintName, source) in PipelineEmitter.Emit(plan!).ToList())
                        spc.AddSource(hintName, SourceText.From(source, Encoding.UTF8));
                }
                catch (System.Exception e) when (e is not System.OperationCanceledException)
                {
                    spc.ReportDiagnostic(Diagnostic.Create(Diagnostics.DiagnosticDescriptors.InternalError, Location.None, plan!.Type.Name, $"{e.GetType().Name}: {e.Message}"));
                }
            });

            context.RegisterSourceOutput(planned.Select(static (result, _) => result.Diagnostics), static (spc, diagnostics) =>
            {
                foreach (var diagnostic in diagnostics) spc.ReportDiagnostic(diagnostic.ToDiagnostic());
            });

            // PipelineSplit.Here() anywhere but at the top level of a [Pipeline] forward: checked over the whole
            // compilation, since a misplaced marker may sit in a class the [Pipeline] provider never sees.
            var misplacedMarkers = context.SyntaxProvider
                .CreateSyntaxProvider(static (node, _) => SplitMarkers.MayBeMarker(node), SplitMarkers.CheckPlacement)
                .Where(static diagnostic => diagnostic is not null)
                .WithTrackingName(TrackingNames.SplitMarkers);
            context.RegisterSourceOutput(misplacedMarkers, static (spc, diagnostic) => spc.ReportDiagnostic(diagnostic!.ToDiagnostic()));
        }

        private static PlanResult Merge(EquatableArray<DiagnosticInfo> parseDiagnostics, PlanResult plan) =>
            new PlanResult(plan.Plan, parseDiagnostics.Concat(plan.Diagnostics).ToEquatableArray());
    }

    /// <summary>Names of the incremental steps, so tests can check that each is cached.</summary>
    public static class TrackingNames
    {
        public const string Parse = nameof(Parse);
        public const string Plan = nameof(Plan);
        public const string Emit = nameof(Emit);
        public const string SplitMarkers = nameof(SplitMarkers);
    }
}
