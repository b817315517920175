using System.Threading;

namespace Pippy.Generators.Parsing
{
    /// <summary>
    /// forward's top-level statements as <see cref="StatementSpec"/>s: each statement's data flow (Roslyn's
    /// AnalyzeDataFlow), the submodules it uses (directly, under a branch, or through the model's methods), and its
    /// code as a stage holds it (<see cref="StageCodeRewriter"/>). A [SplitInto] Sequential's <c>return seq.forward(x);</c>
    /// is read as two statements so that the call can be divided. A <c>PipelineSplit.Here();</c> statement is read as a
    /// split point, not a statement.
    /// </summary>
    internal static class StatementReader
    {
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
        private static IEnumerable<StatementSpec> SplitSequentialReturn(string member, string variable, LocationInfo? location, RecomputeCalls recompute) => new[]
        {
            new StatementSpec(
                $"{variable} = {SequentialForward(member, variable, recompute)};",
                new[] { variable }.ToEquatableArray(), new[] { variable }.ToEquatableArray(), new[] { variable }.ToEquatableArray(),
                EquatableArray<string>.Empty, new[] { member }.ToEquatableArray(), EquatableArray<string>.Empty,
                false, false, false, location, EquatableArray<MethodUseSpec>.Empty, SequentialCall: member),
            new StatementSpec(
                $"return {StageCodeRewriter.OutputsHelper}({variable});",
                new[] { variable }.ToEquatableArray(), EquatableArray<string>.Empty, EquatableArray<string>.Empty,
                EquatableArray<string>.Empty, EquatableArray<string>.Empty, EquatableArray<string>.Empty,
                false, true, false, location, EquatableArray<MethodUseSpec>.Empty),
        };

        /// <summary><c>seq.forward(x)</c>, or its recomputed form for a [Recompute] Sequential.</summary>
        private static string SequentialForward(string member, string variable, RecomputeCalls recompute)
        {
            if (!recompute.Members.Contains(member)) return $"{member}.forward({variable})";
            recompute.Recomputed.Add(member);
            return RecomputeCalls.Code(member, "forward", new[] { ((string?)null, variable) });
        }

        public static List<StatementSpec> Read(
            MethodDeclarationSyntax forward, SemanticModel semanticModel, INamedTypeSymbol type, KnownTypes known,
            Dictionary<string, VariableSpec> variables, ModelMethodWalker walker, RecomputeCalls recompute, List<SplitMarkerSpec> markers, CancellationToken cancellationToken)
        {
            var result = new List<StatementSpec>();
            var symbols = new SymbolLookup(semanticModel, forward, semanticModel.GetDeclaredSymbol(forward, cancellationToken)!, type);
            if (forward.ExpressionBody is { } arrow)
            {
                // An expression-bodied forward is one statement: return <expression>;
                if (SequentialCall(arrow.Expression, symbols, type, known) is { } call)
                {
                    AddVariable(variables, call.Variable, symbols, arrow.Expression, known);
                    result.AddRange(SplitSequentialReturn(call.Member, call.Variable, LocationInfo.From(arrow), recompute));
                    return result;
                }
                var flow = StatementFlow.Analyze(arrow.Expression, symbols);
                var rewriter = new StageCodeRewriter(symbols, type, known, recompute);
                var rewritten = (ExpressionSyntax)rewriter.Visit(arrow.Expression)!;
                string code = $"return {StageCodeRewriter.OutputsHelper}({Dedent(rewritten.WithoutTrivia().ToFullString())});";
                result.Add(Statement(code, flow, arrow.Expression, symbols, walker, type, known, variables, returns: true, rewriter.UsesModel, LocationInfo.From(arrow)));
                return result;
            }

            foreach (var statement in forward.Body!.Statements)
            {
                cancellationToken.ThrowIfCancellationRequested();
                // A split marker is no statement of any stage: it only says that the stage ends after the statements read so far.
                if (SplitMarkers.IsMarkerStatement(statement, semanticModel, known, cancellationToken))
                {
                    markers.Add(new SplitMarkerSpec(result.Count - 1, LocationInfo.From(statement)));
                    continue;
                }
                if (statement is ReturnStatementSyntax { Expression: { } returned } && SequentialCall(returned, symbols, type, known) is { } returnCall)
                {
                    AddVariable(variables, returnCall.Variable, symbols, returned, known);
                    result.AddRange(SplitSequentialReturn(returnCall.Member, returnCall.Variable, LocationInfo.From(statement), recompute));
                    continue;
                }
                var flow = StatementFlow.Analyze(statement, symbols);
                var rewriter = new StageCodeRewriter(symbols, type, known, recompute);
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
            if (t is not null) variables[name] = TypeReader.Variable(name, t, known);
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
                    if (!variables.ContainsKey(symbol.Name)) variables[symbol.Name] = TypeReader.Variable(symbol.Name, t, known);
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
    }
}
