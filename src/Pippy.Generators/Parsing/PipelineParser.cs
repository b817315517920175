using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Pippy.Generators.Diagnostics;
using Pippy.Generators.Model;

namespace Pippy.Generators.Parsing
{
    /// <summary>
    /// Reads a [Pipeline] class into a <see cref="PipelineModelSpec"/>: its submodule members and their annotations,
    /// forward's signature, and every top-level statement of forward with the data flow Roslyn computes for it. This
    /// is the only part of the generator that sees symbols and syntax; everything after it works on plain data.
    /// It never throws: a failure is reported as PIPPY0000.
    /// </summary>
    internal static class PipelineParser
    {
        private static readonly SymbolDisplayFormat TypeFormat = SymbolDisplayFormat.FullyQualifiedFormat
            .WithMiscellaneousOptions(SymbolDisplayMiscellaneousOptions.UseSpecialTypes);

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
            if (!IsPartial(type, out string? notPartial))
                return Fail(diagnostics, DiagnosticInfo.Create(DiagnosticDescriptors.NotPartial, typeLocation, notPartial!));
            if (!IsGenericModule(type))
                return Fail(diagnostics, DiagnosticInfo.Create(DiagnosticDescriptors.NotAModule, typeLocation, type.Name));

            var forward = type.GetMembers("forward").OfType<IMethodSymbol>()
                .Where(m => m.IsOverride && !m.IsStatic)
                .Select(m => m.DeclaringSyntaxReferences.FirstOrDefault()?.GetSyntax(cancellationToken) as MethodDeclarationSyntax)
                .FirstOrDefault(m => m is not null && (m.Body is not null || m.ExpressionBody is not null));
            if (forward is null)
                return Fail(diagnostics, DiagnosticInfo.Create(DiagnosticDescriptors.NoForward, typeLocation, type.Name));

            var semanticModel = context.SemanticModel.Compilation.GetSemanticModel(forward.SyntaxTree);
            var forwardSymbol = semanticModel.GetDeclaredSymbol(forward, cancellationToken)!;
            CheckForwardConstructs(forward, forwardSymbol, semanticModel, diagnostics);
            HoistSplitCalls(ref forward, ref semanticModel, ref type, ref known, cancellationToken);
            forwardSymbol = semanticModel.GetDeclaredSymbol(forward, cancellationToken)!;

            var modules = ReadMembers(type, known, diagnostics);
            var inputs = forwardSymbol.Parameters.Select(p => Variable(p.Name, p.Type, known)).ToList();
            foreach (var (parameter, variable) in forwardSymbol.Parameters.Zip(inputs, (p, v) => (p, v)))
            {
                if (!variable.IsTensor && parameter.RefKind == RefKind.None)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedSignature, LocationInfo.From(parameter.Locations[0]), $"parameter '{parameter.Name}'", variable.Type));
            }
            var output = ReadOutput(forwardSymbol.ReturnType, known);
            if (output is null)
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedSignature, LocationInfo.From(forward.ReturnType), "return type", forwardSymbol.ReturnType.ToDisplayString()));

            var variables = new Dictionary<string, VariableSpec>();
            foreach (var input in inputs) variables[input.Name] = input;
            var walker = new ModelMethodWalker(semanticModel.Compilation, type, forwardSymbol, known, diagnostics);
            var statements = ReadStatements(forward, semanticModel, type, known, variables, walker, cancellationToken);
            var reached = new HashSet<string>(statements.SelectMany(s => s.ModuleReferences.Concat(s.MethodUses.Select(u => u.Member))));
            var unreached = walker.UnreachedUses(modules.Where(m => m.IsSplitEnd && !reached.Contains(m.Name)).Select(m => m.Name).ToList());

            var attribute = context.Attributes[0];
            int schedule = NamedInt(attribute, "Schedule", 0);
            int microbatches = NamedInt(attribute, "Microbatches", PipelineAttribute.DefaultMicrobatches);
            diagnostics.AddRange(BatchStatistics.Find(type, known, statements, microbatches));

            var spec = new PipelineModelSpec(
                ReadTypeSpec(type, forward),
                schedule,
                microbatches,
                NamedInt(attribute, "StagesPerRank", 1),
                attribute.NamedArguments.FirstOrDefault(a => a.Key == "ScheduleFile").Value.Value as string ?? "",
                LocationInfo.From(attribute.ApplicationSyntaxReference?.GetSyntax(cancellationToken) ?? declaration),
                inputs.ToEquatableArray(),
                output ?? new OutputSpec(forwardSymbol.ReturnType.ToDisplayString(TypeFormat), new[] { "output" }.ToEquatableArray()),
                modules.ToEquatableArray(),
                variables.Values.ToEquatableArray(),
                statements.ToEquatableArray(),
                unreached.ToEquatableArray());
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

        private static bool IsPartial(INamedTypeSymbol type, out string? offender)
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

        private static bool IsGenericModule(INamedTypeSymbol type)
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
        private static void CheckForwardConstructs(MethodDeclarationSyntax forward, IMethodSymbol symbol, SemanticModel semanticModel, List<DiagnosticInfo> diagnostics)
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

        private static OutputSpec? ReadOutput(ITypeSymbol type, KnownTypes known)
        {
            string display = type.ToDisplayString(TypeFormat);
            if (known.IsTensor(type)) return new OutputSpec(display, new[] { "output" }.ToEquatableArray());
            if (known.IsTensorTuple(type, out _))
                return new OutputSpec(display, ((INamedTypeSymbol)type).TupleElements.Select(e => "output." + e.Name).ToEquatableArray());
            return null;
        }

        private static TypeSpec ReadTypeSpec(INamedTypeSymbol type, MethodDeclarationSyntax forward)
        {
            var root = (CompilationUnitSyntax)forward.SyntaxTree.GetRoot();
            var fileUsings = root.Usings.Where(u => u.GlobalKeyword.IsKind(SyntaxKind.None)).Select(u => u.WithoutTrivia().ToFullString());
            var namespaceUsings = forward.Ancestors().OfType<BaseNamespaceDeclarationSyntax>().Reverse()
                .SelectMany(n => n.Usings).Select(u => u.WithoutTrivia().ToFullString());
            string ns = type.ContainingNamespace.IsGlobalNamespace ? "" : type.ContainingNamespace.ToDisplayString();
            var containing = new List<string>();
            for (var t = type.ContainingType; t is not null; t = t.ContainingType)
                containing.Insert(0, $"partial {(t.IsRecord ? "record " : "")}{(t.TypeKind == TypeKind.Struct ? "struct" : "class")} {t.Name}");
            string hint = type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat).Replace("global::", "");
            return new TypeSpec(ns, type.Name, type.ToDisplayString(TypeFormat), hint, containing.ToEquatableArray(),
                fileUsings.ToEquatableArray(), namespaceUsings.ToEquatableArray());
        }

        private static List<MemberSpec> ReadMembers(INamedTypeSymbol type, KnownTypes known, List<DiagnosticInfo> diagnostics)
        {
            var members = new List<MemberSpec>();
            foreach (var member in type.GetMembers())
            {
                ITypeSymbol? memberType = member switch
                {
                    IFieldSymbol { IsStatic: false, IsImplicitlyDeclared: false } f => f.Type,
                    IPropertySymbol { IsStatic: false, IsIndexer: false } p => p.Type,
                    _ => null,
                };
                if (memberType is null) continue;
                var attributes = member.GetAttributes();
                AttributeData? Find(INamedTypeSymbol? attributeType) =>
                    attributes.FirstOrDefault(a => SymbolEqualityComparer.Default.Equals(a.AttributeClass, attributeType));
                var splitEnd = Find(known.SplitEnd);
                var tied = Find(known.TiedWeight);
                var splitInto = Find(known.SplitInto);
                bool isModule = known.IsModule(memberType);
                var location = LocationInfo.From(member.Locations[0]);
                string typeName = memberType.ToDisplayString();

                if (splitEnd is not null && !isModule)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SplitEndNotAModule, location, member.Name, typeName));
                if (tied is not null && !isModule)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.TiedWeightNotAModule, location, member.Name, typeName));
                bool isSequential = known.IsSequential(memberType);
                // A Sequential is divided by its children, which run one after the other on one tensor.
                string? elementType = known.ModuleListElement(memberType)?.ToDisplayString(TypeFormat)
                    ?? (isSequential ? SequentialChildType : null);
                int stages = 0;
                if (splitInto is not null)
                {
                    stages = splitInto.ConstructorArguments.Length > 0 && splitInto.ConstructorArguments[0].Value is int k ? k : 0;
                    if (elementType is null)
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SplitIntoNotAList, location, member.Name, typeName));
                    else if (stages < 2)
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SplitIntoTooFew, location, member.Name, stages));
                    else if (stages > DiagnosticDescriptors.MaxStages)
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SplitIntoTooMany, location, member.Name, stages));
                    else if (isSequential && known.OverridesSequentialForward(memberType))
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SplitIntoSequentialWithOwnForward, location, member.Name, typeName));
                }
                if (!isModule) continue;
                string group = tied?.ConstructorArguments.ElementAtOrDefault(0).Value as string ?? "";
                string parameter = tied?.ConstructorArguments.ElementAtOrDefault(1).Value as string ?? (tied is null ? "" : "weight");
                members.Add(new MemberSpec(
                    member.Name, memberType.ToDisplayString(TypeFormat), splitEnd is not null, group, parameter,
                    elementType is null ? 0 : stages, elementType ?? "", location, isSequential));
            }
            return members;
        }

        /// <summary>The type a stage runs a divided Sequential's children as.</summary>
        private const string SequentialChildType = "global::TorchSharp.torch.nn.Module<global::TorchSharp.torch.Tensor, global::TorchSharp.torch.Tensor>";

        /// <summary>
        /// The [SplitInto] Sequential member whose forward <paramref name="expression"/> calls on one tensor variable
        /// (<c>seq.forward(x)</c> or <c>this.seq.forward(x)</c>), with that variable; null for anything else.
        /// </summary>
        private static (string Member, string Variable)? SequentialCall(ExpressionSyntax? expression, SymbolLookup symbols, INamedTypeSymbol type, KnownTypes known)
        {
            if (expression is not InvocationExpressionSyntax
                {
                    Expression: MemberAccessExpressionSyntax { Name.Identifier.ValueText: "forward" } access,
                    ArgumentList.Arguments: { Count: 1 } arguments,
                }
                || arguments[0].Expression is not IdentifierNameSyntax argument
                || !arguments[0].RefKindKeyword.IsKind(SyntaxKind.None))
                return null;
            var target = access.Expression is MemberAccessExpressionSyntax { Expression: ThisExpressionSyntax } viaThis ? viaThis.Name : access.Expression;
            if (target is not IdentifierNameSyntax) return null;
            var member = symbols.Of(target);
            var memberType = member switch { IFieldSymbol f => f.Type, IPropertySymbol p => p.Type, _ => null };
            if (member is null || !SymbolEqualityComparer.Default.Equals(member.ContainingType, type) || !known.IsSequential(memberType)) return null;
            if (!member.GetAttributes().Any(a => SymbolEqualityComparer.Default.Equals(a.AttributeClass, known.SplitInto))) return null;
            var variable = symbols.Of(argument);
            var variableType = variable switch { ILocalSymbol l => l.Type, IParameterSymbol { RefKind: RefKind.None } p => p.Type, _ => null };
            if (!known.IsTensor(variableType) || variable is ILocalSymbol { IsUsing: true }) return null;
            return (member!.Name, argument.Identifier.ValueText);
        }

        /// <summary>
        /// <c>return seq.forward(x);</c> (or forward's <c>=> seq.forward(x)</c>) for a [SplitInto] Sequential, read as the
        /// two statements <c>x = seq.forward(x);</c> and <c>return x;</c>, so that the call can be divided like a loop.
        /// </summary>
        private static IEnumerable<StatementSpec> SplitSequentialReturn(string member, string variable, LocationInfo? location) => new[]
        {
            new StatementSpec(
                $"{variable} = {member}.forward({variable});",
                new[] { variable }.ToEquatableArray(), new[] { variable }.ToEquatableArray(), new[] { variable }.ToEquatableArray(),
                EquatableArray<string>.Empty, new[] { member }.ToEquatableArray(), EquatableArray<string>.Empty,
                false, false, false, location, EquatableArray<MethodUseSpec>.Empty, SequentialCall: member),
            new StatementSpec(
                $"return {StageCodeRewriter.OutputsHelper}({variable});",
                new[] { variable }.ToEquatableArray(), EquatableArray<string>.Empty, EquatableArray<string>.Empty,
                EquatableArray<string>.Empty, EquatableArray<string>.Empty, EquatableArray<string>.Empty,
                false, true, false, location, EquatableArray<MethodUseSpec>.Empty),
        };

        private static List<StatementSpec> ReadStatements(
            MethodDeclarationSyntax forward, SemanticModel semanticModel, INamedTypeSymbol type, KnownTypes known,
            Dictionary<string, VariableSpec> variables, ModelMethodWalker walker, CancellationToken cancellationToken)
        {
            var result = new List<StatementSpec>();
            var symbols = new SymbolLookup(semanticModel, forward, semanticModel.GetDeclaredSymbol(forward, cancellationToken)!, type);
            if (forward.ExpressionBody is { } arrow)
            {
                // An expression-bodied forward is one statement: return <expression>;
                if (SequentialCall(arrow.Expression, symbols, type, known) is { } call)
                {
                    AddVariable(variables, call.Variable, symbols, arrow.Expression, known);
                    result.AddRange(SplitSequentialReturn(call.Member, call.Variable, LocationInfo.From(arrow)));
                    return result;
                }
                var flow = StatementFlow.Analyze(arrow.Expression, symbols);
                var rewriter = new StageCodeRewriter(symbols, type, known);
                var rewritten = (ExpressionSyntax)rewriter.Visit(arrow.Expression)!;
                string code = $"return {StageCodeRewriter.OutputsHelper}({Dedent(rewritten.WithoutTrivia().ToFullString())});";
                result.Add(Statement(code, flow, arrow.Expression, symbols, walker, type, known, variables, returns: true, rewriter.UsesModel, LocationInfo.From(arrow)));
                return result;
            }

            foreach (var statement in forward.Body!.Statements)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (statement is ReturnStatementSyntax { Expression: { } returned } && SequentialCall(returned, symbols, type, known) is { } returnCall)
                {
                    AddVariable(variables, returnCall.Variable, symbols, returned, known);
                    result.AddRange(SplitSequentialReturn(returnCall.Member, returnCall.Variable, LocationInfo.From(statement)));
                    continue;
                }
                var flow = StatementFlow.Analyze(statement, symbols);
                var rewriter = new StageCodeRewriter(symbols, type, known);
                var rewritten = (StatementSyntax)rewriter.Visit(statement)!;
                var spec = Statement(Dedent(rewritten.ToFullString()), flow, statement, symbols, walker, type, known, variables, rewriter.Returns, rewriter.UsesModel, LocationInfo.From(statement));
                if (StageCodeRewriter.ReadUsing(statement, rewritten, symbols, known) is { } usingDeclaration)
                    spec = spec with { Using = new UsingDeclarationSpec(usingDeclaration.Names.ToEquatableArray(), usingDeclaration.Kind, Dedent(usingDeclaration.WithoutUsing.ToFullString()), usingDeclaration.Type) };
                if (statement is ExpressionStatementSyntax { Expression: AssignmentExpressionSyntax { RawKind: (int)SyntaxKind.SimpleAssignmentExpression, Left: IdentifierNameSyntax assigned } assignment }
                    && SequentialCall(assignment.Right, symbols, type, known) is { } assignCall && assignCall.Variable == assigned.Identifier.ValueText)
                    spec = spec with { SequentialCall = assignCall.Member };
                result.Add(spec);
            }
            return result;
        }

        /// <summary>Records the type of a variable that a statement read without data flow analysis uses.</summary>
        private static void AddVariable(Dictionary<string, VariableSpec> variables, string name, SymbolLookup symbols, ExpressionSyntax call, KnownTypes known)
        {
            if (variables.ContainsKey(name)) return;
            var argument = ((InvocationExpressionSyntax)call).ArgumentList.Arguments[0].Expression;
            var symbol = symbols.Of(argument);
            var t = symbol switch { ILocalSymbol l => l.Type, IParameterSymbol p => p.Type, _ => null };
            if (t is not null) variables[name] = Variable(name, t, known);
        }

        private static StatementSpec Statement(
            string code, StatementFlow flow, SyntaxNode node, SymbolLookup symbols, ModelMethodWalker walker, INamedTypeSymbol type, KnownTypes known,
            Dictionary<string, VariableSpec> variables, bool returns, bool usesModel, LocationInfo? location)
        {
            IEnumerable<string> Names(IEnumerable<ISymbol>? symbols)
            {
                foreach (var symbol in symbols ?? Enumerable.Empty<ISymbol>())
                {
                    if (symbol is IParameterSymbol { IsThis: true }) continue;
                    ITypeSymbol? t = symbol switch { ILocalSymbol l => l.Type, IParameterSymbol p => p.Type, _ => null };
                    if (t is null) continue;
                    if (!variables.ContainsKey(symbol.Name)) variables[symbol.Name] = Variable(symbol.Name, t, known);
                    yield return symbol.Name;
                }
            }

            var references = new List<string>();
            var inBranches = new List<string>();
            foreach (var identifier in node.DescendantNodesAndSelf().OfType<IdentifierNameSyntax>())
            {
                if (SymbolLookup.IsOtherMemberName(identifier)) continue;
                var symbol = symbols.Of(identifier);
                if (symbol is not (IFieldSymbol or IPropertySymbol) || !SymbolEqualityComparer.Default.Equals(symbol.ContainingType, type)) continue;
                if (!known.IsModule(symbol is IFieldSymbol f ? f.Type : ((IPropertySymbol)symbol).Type)) continue;
                references.Add(symbol.Name);
                if (IsInBranch(identifier, node)) inBranches.Add(symbol.Name);
            }

            return new StatementSpec(
                code,
                Names(flow.DataFlowsIn).ToEquatableArray(),
                Names(flow.WrittenInside).Distinct().ToEquatableArray(),
                Names(flow.AlwaysAssigned).ToEquatableArray(),
                Names(flow.VariablesDeclared).ToEquatableArray(),
                references.ToEquatableArray(),
                inBranches.Distinct().ToEquatableArray(),
                node is ForEachStatementSyntax or ForStatementSyntax or WhileStatementSyntax or DoStatementSyntax,
                returns,
                usesModel,
                location,
                walker.UsesThroughMethods(node, symbols).ToEquatableArray());
        }

        /// <summary>True when <paramref name="node"/> runs only on some paths through <paramref name="statement"/>.</summary>
        internal static bool IsInBranch(SyntaxNode node, SyntaxNode statement)
        {
            for (var n = node; n is not null; n = n.Parent)
            {
                if (n is IfStatementSyntax or SwitchStatementSyntax or ForEachStatementSyntax or ForStatementSyntax or WhileStatementSyntax
                    or DoStatementSyntax or ConditionalExpressionSyntax or SwitchExpressionSyntax or AnonymousFunctionExpressionSyntax
                    or LocalFunctionStatementSyntax)
                    return true;
                if (n is BinaryExpressionSyntax binary && binary.Right.Span.Contains(node.Span)
                    && binary.Kind() is SyntaxKind.LogicalAndExpression or SyntaxKind.LogicalOrExpression or SyntaxKind.CoalesceExpression)
                    return true;
                if (n == statement) return false;
            }
            return false;
        }

        /// <summary>
        /// The statement as the user wrote it (comments and line breaks kept), without surrounding blank lines and
        /// without the indentation it had inside forward.
        /// </summary>
        private static string Dedent(string text)
        {
            var lines = text.Replace("\r\n", "\n").Split('\n').Select(l => l.TrimEnd()).ToList();
            while (lines.Count > 0 && lines[0].Length == 0) lines.RemoveAt(0);
            while (lines.Count > 0 && lines[lines.Count - 1].Length == 0) lines.RemoveAt(lines.Count - 1);
            int indent = lines.Where(l => l.Length > 0).Select(l => l.Length - l.TrimStart().Length).DefaultIfEmpty(0).Min();
            return string.Join("\n", lines.Select(l => l.Length >= indent ? l.Substring(indent) : l));
        }

        private static VariableSpec Variable(string name, ITypeSymbol type, KnownTypes known) =>
            new VariableSpec(name, type.ToDisplayString(TypeFormat), known.IsTensor(type));

        private static int NamedInt(AttributeData attribute, string name, int fallback)
        {
            foreach (var argument in attribute.NamedArguments)
                if (argument.Key == name && argument.Value.Value is int value) return value;
            return fallback;
        }
    }
}
