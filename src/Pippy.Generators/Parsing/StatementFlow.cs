namespace Pippy.Generators.Parsing
{
    /// <summary>
    /// What one statement of forward reads from before it, writes, always writes and declares: Roslyn's region data
    /// flow, in its lexical order. Roslyn's <c>AnalyzeDataFlow</c> walks the whole method for each statement, which
    /// makes a long forward quadratic (96 blocks: most of the generator's time), so straight-line statements (an
    /// assignment to a local, a call, a declaration or a return, with no branch, lambda, ref/out argument or nested
    /// assignment) are read directly from their symbols; every other statement still gets Roslyn's analysis.
    /// </summary>
    internal sealed class StatementFlow
    {
        private StatementFlow(IReadOnlyList<ISymbol> dataFlowsIn, IReadOnlyList<ISymbol> writtenInside, IReadOnlyList<ISymbol> alwaysAssigned, IReadOnlyList<ISymbol> variablesDeclared)
        {
            DataFlowsIn = dataFlowsIn;
            WrittenInside = writtenInside;
            AlwaysAssigned = alwaysAssigned;
            VariablesDeclared = variablesDeclared;
        }

        public IReadOnlyList<ISymbol> DataFlowsIn { get; }
        public IReadOnlyList<ISymbol> WrittenInside { get; }
        public IReadOnlyList<ISymbol> AlwaysAssigned { get; }
        public IReadOnlyList<ISymbol> VariablesDeclared { get; }

        public static StatementFlow Analyze(SyntaxNode node, SymbolLookup symbols) =>
            TryStraightLine(node, symbols) ?? FromRoslyn(node is ExpressionSyntax e ? symbols.Model.AnalyzeDataFlow(e) : symbols.Model.AnalyzeDataFlow((StatementSyntax)node));

        private static StatementFlow FromRoslyn(DataFlowAnalysis? flow) =>
            flow is null || !flow.Succeeded
                ? new StatementFlow(new ISymbol[0], new ISymbol[0], new ISymbol[0], new ISymbol[0])
                : new StatementFlow(flow.DataFlowsIn, flow.WrittenInside, flow.AlwaysAssigned, flow.VariablesDeclared);

        private static StatementFlow? TryStraightLine(SyntaxNode node, SymbolLookup symbols)
        {
            var model = symbols.Model;
            IdentifierNameSyntax? assigned = null;
            var declared = new List<ISymbol>();
            var initialized = new List<ISymbol>();
            switch (node)
            {
                case ExpressionStatementSyntax { Expression: AssignmentExpressionSyntax { RawKind: (int)SyntaxKind.SimpleAssignmentExpression, Left: IdentifierNameSyntax left } }:
                    assigned = left;
                    break;
                case ExpressionStatementSyntax { Expression: InvocationExpressionSyntax }:
                case ReturnStatementSyntax:
                case ExpressionSyntax: // the body of an expression-bodied forward
                    break;
                case LocalDeclarationStatementSyntax { UsingKeyword.RawKind: (int)SyntaxKind.None } declaration:
                    foreach (var variable in declaration.Declaration.Variables)
                    {
                        if (model.GetDeclaredSymbol(variable) is not ILocalSymbol local) return null;
                        declared.Add(local);
                        if (variable.Initializer is not null) initialized.Add(local);
                    }
                    break;
                default:
                    return null;
            }
            if (!IsStraightLine(node, assigned?.Parent)) return null;

            var reads = new List<ISymbol>();
            foreach (var identifier in node.DescendantNodes().OfType<IdentifierNameSyntax>())
            {
                if (identifier == assigned || identifier.Parent is NameColonSyntax or NameEqualsSyntax || SymbolLookup.IsOtherMemberName(identifier)) continue; // not reads of locals
                var symbol = symbols.Of(identifier);
                if (symbol is ILocalSymbol or IParameterSymbol { IsThis: false } && !declared.Contains(symbol, SymbolEqualityComparer.Default)
                    && !reads.Contains(symbol, SymbolEqualityComparer.Default))
                    reads.Add(symbol);
            }
            var written = new List<ISymbol>(initialized);
            if (assigned is not null)
            {
                // An assignment to a field or property: Roslyn decides.
                if (symbols.Of(assigned) is not (ILocalSymbol or IParameterSymbol) || symbols.Of(assigned) is not { } target) return null;
                written.Add(target);
            }
            var writtenInOrder = Lexical(written);
            return new StatementFlow(Lexical(reads), writtenInOrder, writtenInOrder, Lexical(declared));
        }

        /// <summary>No construct that makes a read or write conditional, deferred or hidden (then Roslyn decides).</summary>
        private static bool IsStraightLine(SyntaxNode statement, SyntaxNode? topAssignment)
        {
            foreach (var n in statement.DescendantNodesAndSelf())
            {
                switch (n)
                {
                    case AnonymousFunctionExpressionSyntax or LocalFunctionStatementSyntax or ConditionalExpressionSyntax or SwitchExpressionSyntax
                        or IsPatternExpressionSyntax or DeclarationExpressionSyntax or ConditionalAccessExpressionSyntax or QueryExpressionSyntax
                        or TupleExpressionSyntax or RefExpressionSyntax or PrefixUnaryExpressionSyntax { RawKind: (int)SyntaxKind.PreIncrementExpression or (int)SyntaxKind.PreDecrementExpression }
                        or PostfixUnaryExpressionSyntax or ThrowExpressionSyntax or StackAllocArrayCreationExpressionSyntax:
                        return false;
                    case AssignmentExpressionSyntax when n != topAssignment:
                        return false;
                    case BinaryExpressionSyntax binary when binary.Kind() is SyntaxKind.LogicalAndExpression or SyntaxKind.LogicalOrExpression or SyntaxKind.CoalesceExpression:
                        return false;
                    case ArgumentSyntax argument when !argument.RefKindKeyword.IsKind(SyntaxKind.None):
                        return false;
                }
            }
            return true;
        }

        /// <summary>Roslyn's order: by where each symbol is declared.</summary>
        private static IReadOnlyList<ISymbol> Lexical(List<ISymbol> symbols) =>
            symbols.Distinct<ISymbol>(SymbolEqualityComparer.Default)
                .OrderBy(s => s.Locations.FirstOrDefault()?.SourceTree?.FilePath ?? "", System.StringComparer.Ordinal)
                .ThenBy(s => s.Locations.FirstOrDefault()?.SourceSpan.Start ?? 0)
                .ToList();
    }
}
