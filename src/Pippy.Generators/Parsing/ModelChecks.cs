namespace Pippy.Generators.Parsing
{
    /// <summary>
    /// What a [Pipeline] class and its forward must be before anything is read: a partial class (in partial types)
    /// deriving from <c>torch.nn.Module&lt;...&gt;</c>, whose forward has no construct a pipeline cannot split.
    /// </summary>
    internal static class ModelChecks
    {
        /// <summary>Whether the type and every type containing it are partial; <paramref name="offender"/> names the first that is not.</summary>
        public static bool IsPartial(INamedTypeSymbol type, out string? offender)
        {
            for (var t = type; t is not null; t = t.ContainingType)
            {
                bool partial = t.DeclaringSyntaxReferences.Any(r => r.GetSyntax() is TypeDeclarationSyntax d && d.Modifiers.Any(SyntaxKind.PartialKeyword));
                if (!partial)
                {
                    offender = t.Name;
                    return false;
                }
            }
            offender = null;
            return true;
        }

        /// <summary>Whether the type derives from TorchSharp's <c>torch.nn.Module&lt;...&gt;</c>.</summary>
        public static bool IsGenericModule(INamedTypeSymbol type)
        {
            for (var t = type.BaseType; t is not null; t = t.BaseType)
            {
                var definition = t.OriginalDefinition;
                if (definition.Name == "Module" && definition.IsGenericType
                    && definition.ContainingType?.ToDisplayString() == "TorchSharp.torch.nn")
                    return true;
            }
            return false;
        }

        /// <summary>ref/out/in parameters, async and iterators cannot be cut into stages.</summary>
        public static void CheckForwardConstructs(MethodDeclarationSyntax forward, IMethodSymbol symbol, SemanticModel semanticModel, List<DiagnosticInfo> diagnostics)
        {
            foreach (var parameter in symbol.Parameters.Where(p => p.RefKind != RefKind.None))
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedForward, LocationInfo.From(parameter.Locations[0]),
                    $"a {parameter.RefKind.ToString().ToLowerInvariant()} parameter ('{parameter.Name}')", "pass the tensor by value and return what forward computes"));
            if (symbol.IsAsync)
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedForward, LocationInfo.From(forward.Identifier.GetLocation()),
                    "async", "make forward synchronous"));
            var body = (SyntaxNode?)forward.Body ?? forward.ExpressionBody;
            var yield = body?.DescendantNodes(n => n is not (AnonymousFunctionExpressionSyntax or LocalFunctionStatementSyntax)).OfType<YieldStatementSyntax>().FirstOrDefault();
            if (yield is not null)
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedForward, LocationInfo.From(yield), "yield", "return the result instead of iterating"));
            var refLocal = body?.DescendantNodes().OfType<RefTypeSyntax>().FirstOrDefault();
            if (refLocal is not null)
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedForward, LocationInfo.From(refLocal), "a ref local", "use a plain local"));
            // A block body whose end is reachable returns nothing on some path (the compiler's CS0161): the last stage
            // would copy that and not compile either, so say what the pipeline needs instead of emitting it.
            if (forward.Body is { } block && !symbol.ReturnsVoid && yield is null)
            {
                var flow = semanticModel.AnalyzeControlFlow(block);
                if (flow is { Succeeded: true, EndPointIsReachable: true })
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ForwardEndReachable, LocationInfo.From(forward.Identifier.GetLocation()), symbol.ContainingType.Name));
            }
        }
    }
}
