using System.Threading;

namespace Pippy.Generators.Parsing
{
    /// <summary>
    /// The inline split marker, <c>PipelineSplit.Here();</c>: recognising its calls, and checking where they stand.
    /// The parser reads the markers that are top-level statements of a [Pipeline] model's forward as split points; every
    /// other call of it, in any class of the compilation, is reported here (PIPPY0033), once, by its own provider.
    /// </summary>
    internal static class SplitMarkers
    {
        /// <summary>A cheap syntactic filter: a call of something named <c>Here</c> (<c>PipelineSplit.Here()</c>, or <c>Here()</c> under a using static).</summary>
        public static bool MayBeMarker(SyntaxNode node) =>
            node is InvocationExpressionSyntax { ArgumentList.Arguments.Count: 0 } invocation
            && invocation.Expression switch
            {
                MemberAccessExpressionSyntax access => access.Name.Identifier.ValueText == PipelineGenerator.SplitMarkerMethodName,
                IdentifierNameSyntax name => name.Identifier.ValueText == PipelineGenerator.SplitMarkerMethodName,
                _ => false,
            };

        /// <summary>Whether <paramref name="statement"/> is <c>PipelineSplit.Here();</c>.</summary>
        public static bool IsMarkerStatement(StatementSyntax statement, SemanticModel model, KnownTypes known, CancellationToken cancellationToken) =>
            statement is ExpressionStatementSyntax { Expression: InvocationExpressionSyntax invocation }
            && MayBeMarker(invocation) && IsMarkerCall(invocation, model, known.PipelineSplit, cancellationToken);

        private static bool IsMarkerCall(InvocationExpressionSyntax invocation, SemanticModel model, INamedTypeSymbol? markerClass, CancellationToken cancellationToken) =>
            markerClass is not null
            && model.GetSymbolInfo(invocation, cancellationToken).Symbol is IMethodSymbol method
            && SymbolEqualityComparer.Default.Equals(method.ContainingType, markerClass);

        /// <summary>PIPPY0033 for a marker call that is not a top-level statement of a [Pipeline] model's forward; null for one that is, or for another method named Here.</summary>
        public static DiagnosticInfo? CheckPlacement(GeneratorSyntaxContext context, CancellationToken cancellationToken)
        {
            var invocation = (InvocationExpressionSyntax)context.Node;
            var markerClass = context.SemanticModel.Compilation.GetTypeByMetadataName(PipelineGenerator.SplitMarkerClassName);
            if (!IsMarkerCall(invocation, context.SemanticModel, markerClass, cancellationToken)) return null;

            var member = invocation.Ancestors().OfType<MemberDeclarationSyntax>().FirstOrDefault();
            var type = member?.Parent is TypeDeclarationSyntax declaration ? context.SemanticModel.GetDeclaredSymbol(declaration, cancellationToken) : null;
            bool inPipeline = type?.GetAttributes().Any(a => a.AttributeClass?.ToDisplayString() == PipelineGenerator.PipelineAttributeName) == true;
            bool inForward = inPipeline && member is MethodDeclarationSyntax { Identifier.ValueText: "forward" } method && method.Modifiers.Any(SyntaxKind.OverrideKeyword);
            string? problem =
                !inForward ? $"in {Describe(member, type)}, which is not the forward of a [Pipeline] model"
                : invocation.Parent is not ExpressionStatementSyntax statement ? "part of a larger expression"
                : statement.Parent != ((MethodDeclarationSyntax)member!).Body ? "inside a block, branch, loop or function of forward"
                : null;
            return problem is null ? null : DiagnosticInfo.Create(DiagnosticDescriptors.MisplacedSplitMarker, LocationInfo.From(invocation), problem);
        }

        private static string Describe(MemberDeclarationSyntax? member, INamedTypeSymbol? type)
        {
            string typeName = type is null ? "" : type.Name + ".";
            return member switch
            {
                MethodDeclarationSyntax m => $"'{typeName}{m.Identifier.ValueText}'",
                PropertyDeclarationSyntax p => $"'{typeName}{p.Identifier.ValueText}'",
                _ => type is null ? "code outside a method" : $"a member of '{type.Name}' other than a method",
            };
        }
    }
}
