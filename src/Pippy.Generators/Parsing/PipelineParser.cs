using System.Threading;
using Pippy.Schedules;

namespace Pippy.Generators.Parsing
{
    /// <summary>
    /// Reads a [Pipeline] class into a <see cref="PipelineModelSpec"/>: its submodule members and their annotations,
    /// forward's signature, and every top-level statement of forward with the data flow Roslyn computes for it. This
    /// is the only part of the generator that sees symbols and syntax; everything after it works on plain data.
    /// It never throws: a failure is reported as PIPPY0000. The work is shared out: <see cref="ModelChecks"/> (what the
    /// class and forward must be), <see cref="MemberReader"/> (submodules and annotations), <see cref="TypeReader"/>
    /// (the model type, forward's result and variables), <see cref="StatementReader"/> (forward's statements).
    /// </summary>
    internal static class PipelineParser
    {
        public static ParseResult Parse(GeneratorAttributeSyntaxContext context, CancellationToken cancellationToken)
        {
            try
            {
                return ParseModel(context, cancellationToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                var location = LocationInfo.From(((ClassDeclarationSyntax)context.TargetNode).Identifier.GetLocation());
                return new ParseResult(null, new[] { DiagnosticInfo.Create(DiagnosticDescriptors.InternalError, location, context.TargetSymbol.Name, $"{e.GetType().Name}: {e.Message}") }.ToEquatableArray());
            }
        }

        private static ParseResult ParseModel(GeneratorAttributeSyntaxContext context, CancellationToken cancellationToken)
        {
            var type = (INamedTypeSymbol)context.TargetSymbol;
            var declaration = (ClassDeclarationSyntax)context.TargetNode;
            var known = new KnownTypes(context.SemanticModel.Compilation);
            var diagnostics = new List<DiagnosticInfo>();
            var typeLocation = LocationInfo.From(declaration.Identifier.GetLocation());

            if (type.IsGenericType)
                return Fail(diagnostics, DiagnosticInfo.Create(DiagnosticDescriptors.GenericModel, typeLocation, type.Name));
            if (!ModelChecks.IsPartial(type, out string? notPartial))
                return Fail(diagnostics, DiagnosticInfo.Create(DiagnosticDescriptors.NotPartial, typeLocation, notPartial!));
            if (!ModelChecks.IsGenericModule(type))
                return Fail(diagnostics, DiagnosticInfo.Create(DiagnosticDescriptors.NotAModule, typeLocation, type.Name));

            var forward = type.GetMembers("forward").OfType<IMethodSymbol>()
                .Where(m => m.IsOverride && !m.IsStatic)
                .Select(m => m.DeclaringSyntaxReferences.FirstOrDefault()?.GetSyntax(cancellationToken) as MethodDeclarationSyntax)
                .FirstOrDefault(m => m is not null && (m.Body is not null || m.ExpressionBody is not null));
            if (forward is null)
                return Fail(diagnostics, DiagnosticInfo.Create(DiagnosticDescriptors.NoForward, typeLocation, type.Name));

            var semanticModel = context.SemanticModel.Compilation.GetSemanticModel(forward.SyntaxTree);
            var forwardSymbol = semanticModel.GetDeclaredSymbol(forward, cancellationToken)!;
            ModelChecks.CheckForwardConstructs(forward, forwardSymbol, semanticModel, diagnostics);
            HoistSplitCalls(ref forward, ref semanticModel, ref type, ref known, cancellationToken);
            forwardSymbol = semanticModel.GetDeclaredSymbol(forward, cancellationToken)!;

            var modules = MemberReader.Read(type, known, diagnostics);
            var inputs = forwardSymbol.Parameters.Select(p => TypeReader.Parameter(p, known)).ToList();
            foreach (var (parameter, variable) in forwardSymbol.Parameters.Zip(inputs, (p, v) => (p, v)))
            {
                if (!variable.IsTensor && !KnownTypes.IsPlainArgument(parameter.Type) && parameter.RefKind == RefKind.None)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedSignature, LocationInfo.From(parameter.Locations[0]), $"parameter '{parameter.Name}'", variable.Type));
            }
            var output = TypeReader.ReadOutput(forwardSymbol.ReturnType, known);
            if (output is null)
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedSignature, LocationInfo.From(forward.ReturnType), "return type", forwardSymbol.ReturnType.ToDisplayString()));

            var variables = new Dictionary<string, VariableSpec>();
            foreach (var input in inputs) variables[input.Name] = input;
            var walker = new ModelMethodWalker(semanticModel.Compilation, type, forwardSymbol, known, diagnostics);
            var recompute = new RecomputeCalls(type, known);
            var markers = new List<SplitMarkerSpec>();
            var statements = StatementReader.Read(forward, semanticModel, type, known, variables, walker, recompute, markers, cancellationToken);
            var reached = new HashSet<string>(statements.SelectMany(s => s.ModuleReferences.Concat(s.MethodUses.Select(u => u.Member))));
            diagnostics.AddRange(recompute.Diagnostics);
            foreach (var member in modules.Where(m => recompute.Members.Contains(m.Name) && !recompute.Recomputed.Contains(m.Name)))
                if (!recompute.Diagnostics.Any(d => d.Arguments.ElementAtOrDefault(1) == member.Name))
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.RecomputeNotCalledInForward, member.Location, member.Name,
                        reached.Contains(member.Name) ? "used by forward only through a method, a lambda or a value, not called by it" : "not used by forward"));
            var unreached = walker.UnreachedUses(modules.Where(m => (m.IsSplitEnd || m.IsSplitBegin) && !reached.Contains(m.Name)).Select(m => m.Name).ToList());

            var attribute = context.Attributes[0];
            var schedule = (ScheduleKind)NamedInt(attribute, "Schedule", 0);
            int microbatches = NamedInt(attribute, "Microbatches", PipelineAttribute.DefaultMicrobatches);
            diagnostics.AddRange(BatchStatistics.Find(type, known, statements, microbatches));

            var spec = new PipelineModelSpec(
                TypeReader.ReadTypeSpec(type, forward),
                schedule,
                microbatches,
                NamedInt(attribute, "StagesPerRank", 1),
                attribute.NamedArguments.FirstOrDefault(a => a.Key == "ScheduleFile").Value.Value as string ?? "",
                LocationInfo.From(attribute.ApplicationSyntaxReference?.GetSyntax(cancellationToken) ?? declaration),
                inputs.ToEquatableArray(),
                output ?? new OutputSpec(forwardSymbol.ReturnType.ToDisplayString(TypeReader.TypeFormat), new[] { "output" }.ToEquatableArray()),
                modules.ToEquatableArray(),
                variables.Values.ToEquatableArray(),
                statements.ToEquatableArray(),
                unreached.ToEquatableArray(),
                markers.ToEquatableArray());
            return new ParseResult(spec, diagnostics.ToEquatableArray());
        }

        /// <summary>
        /// When split calls are nested in larger expressions, continues with a copy of the compilation whose forward
        /// has them hoisted into statements of their own (see <see cref="SplitCallHoister"/>).
        /// </summary>
        private static void HoistSplitCalls(
            ref MethodDeclarationSyntax forward, ref SemanticModel semanticModel, ref INamedTypeSymbol type, ref KnownTypes known, CancellationToken cancellationToken)
        {
            var splitEnd = known.SplitEnd;
            var splitMembers = new HashSet<string>(type.GetMembers()
                .Where(m => m.GetAttributes().Any(a => SymbolEqualityComparer.Default.Equals(a.AttributeClass, splitEnd)))
                .Select(m => m.Name));
            if (splitMembers.Count == 0) return;
            var body = SplitCallHoister.Hoist(forward, new SymbolLookup(semanticModel, forward, semanticModel.GetDeclaredSymbol(forward, cancellationToken)!, type), type, splitMembers);
            if (body is null) return;

            var annotation = new SyntaxAnnotation("Pippy.HoistedForward");
            var hoisted = forward.WithExpressionBody(null).WithSemicolonToken(SyntaxFactory.Token(SyntaxKind.None)).WithBody(body).WithAdditionalAnnotations(annotation);
            var tree = forward.SyntaxTree;
            var newTree = tree.WithRootAndOptions(tree.GetRoot(cancellationToken).ReplaceNode(forward, hoisted), tree.Options);
            var compilation = semanticModel.Compilation.ReplaceSyntaxTree(tree, newTree);
            semanticModel = compilation.GetSemanticModel(newTree);
            forward = newTree.GetRoot(cancellationToken).GetAnnotatedNodes(annotation).OfType<MethodDeclarationSyntax>().Single();
            type = semanticModel.GetDeclaredSymbol(forward, cancellationToken)!.ContainingType;
            known = new KnownTypes(compilation);
        }

        private static ParseResult Fail(List<DiagnosticInfo> diagnostics, DiagnosticInfo diagnostic)
        {
            diagnostics.Add(diagnostic);
            return new ParseResult(null, diagnostics.ToEquatableArray());
        }

        private static int NamedInt(AttributeData attribute, string name, int fallback)
        {
            foreach (var argument in attribute.NamedArguments)
                if (argument.Key == name && argument.Value.Value is int value) return value;
            return fallback;
        }
    }
}
