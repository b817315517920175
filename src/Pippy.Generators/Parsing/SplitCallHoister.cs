namespace Pippy.Generators.Parsing
{
    /// <summary>
    /// A stage ends after the statement that calls its [SplitEnd] submodule. Where one statement calls several of them,
    /// or forward's last statement calls one, there is no statement end to split at: those calls, nested inside larger
    /// expressions, are moved into statements of their own, so that users may keep nested code such as
    /// <c>=&gt; head.forward(b.forward(a.forward(x)))</c>: it becomes
    /// <c>var __a = a.forward(x); var __b = b.forward(__a); return head.forward(__b);</c>. A call is moved only when nothing evaluated before it in its statement can have
    /// an effect (names, literals, member reads) and it runs on every path (not under ?:, &amp;&amp;, ||, ?? or in a
    /// lambda); other calls stay where they are and the planner reports them.
    /// </summary>
    internal static class SplitCallHoister
    {
        /// <summary>The forward body as a list of statements with split calls hoisted; null when nothing changes.</summary>
        public static BlockSyntax? Hoist(MethodDeclarationSyntax forward, SymbolLookup symbols, INamedTypeSymbol type, ISet<string> splitMembers)
        {
            // Roots are the original nodes (the semantic model knows only those): each statement, or the arrow's expression.
            var roots = forward.Body is { } body ? body.Statements.Cast<SyntaxNode>().ToList() : new List<SyntaxNode> { forward.ExpressionBody!.Expression };
            bool changed = false;
            var result = new List<StatementSyntax>();
            foreach (var root in roots)
            {
                var calls = root is ExpressionStatementSyntax or LocalDeclarationStatementSyntax or ReturnStatementSyntax or ExpressionSyntax
                    ? root.DescendantNodesAndSelf().OfType<InvocationExpressionSyntax>()
                        .Where(call => IsSplitCall(call, symbols, type, splitMembers) && !IsConditional(call, root) && EarlierIsPure(call, root))
                        .OrderBy(call => call.Span.End)
                        .ToList()
                    : new List<InvocationExpressionSyntax>();
                // One split call per statement needs no hoisting (the stage ends after its statement), unless the
                // statement is forward's last, where nothing would be left for the stage after it.
                if (calls.Count < 2 && root != roots[roots.Count - 1]) calls.Clear();
                var current = root.TrackNodes(calls);
                foreach (var call in calls)
                {
                    var node = current.GetCurrentNode(call)!;
                    if (IsWholeStatement(node, current)) break;
                    string temporary = "__" + MemberName(call);
                    result.Add(SyntaxFactory.ParseStatement($"var {temporary} = {node.WithoutTrivia().ToFullString()};\n"));
                    current = current.ReplaceNode(node, SyntaxFactory.IdentifierName(temporary).WithTriviaFrom(node));
                    changed = true;
                }
                result.Add(current is ExpressionSyntax expression
                    ? SyntaxFactory.ReturnStatement(expression.WithoutTrivia().WithLeadingTrivia(SyntaxFactory.Space))
                    : (StatementSyntax)current);
            }
            return changed ? SyntaxFactory.Block(result) : null;
        }

        private static bool IsSplitCall(InvocationExpressionSyntax call, SymbolLookup symbols, INamedTypeSymbol type, ISet<string> splitMembers) =>
            call.Expression is MemberAccessExpressionSyntax access
            // By name first: only a call on a member of that name can be one, and asking the semantic model is costly.
            && access.Expression switch
            {
                IdentifierNameSyntax name => splitMembers.Contains(name.Identifier.Text),
                MemberAccessExpressionSyntax { Expression: ThisExpressionSyntax } inner => splitMembers.Contains(inner.Name.Identifier.Text),
                _ => false,
            }
            && (access.Expression is MemberAccessExpressionSyntax qualified ? symbols.Of(qualified.Name) : symbols.Of(access.Expression)) is (IFieldSymbol or IPropertySymbol) and var member
            && SymbolEqualityComparer.Default.Equals(member.ContainingType, type)
            && splitMembers.Contains(member.Name);

        private static string MemberName(InvocationExpressionSyntax call)
        {
            var receiver = ((MemberAccessExpressionSyntax)call.Expression).Expression;
            return receiver is MemberAccessExpressionSyntax inner ? inner.Name.Identifier.Text : receiver.ToString();
        }

        /// <summary>The call is all the statement computes: <c>x = call;</c>, <c>var x = call;</c>, <c>call;</c> or <c>return call;</c>.</summary>
        private static bool IsWholeStatement(ExpressionSyntax call, SyntaxNode statement) => statement switch
        {
            ExpressionSyntax arrow => arrow == call,
            ExpressionStatementSyntax { Expression: var e } => e == call || e is AssignmentExpressionSyntax { Right: var r } && r == call,
            LocalDeclarationStatementSyntax local => local.Declaration.Variables.Count == 1 && local.Declaration.Variables[0].Initializer?.Value == call,
            ReturnStatementSyntax r => r.Expression == call,
            _ => false,
        };

        private static bool IsConditional(SyntaxNode node, SyntaxNode statement)
        {
            for (var n = node.Parent; n is not null && n != statement; n = n.Parent)
            {
                if (n is ConditionalExpressionSyntax or SwitchExpressionSyntax or AnonymousFunctionExpressionSyntax or ConditionalAccessExpressionSyntax) return true;
                if (n is BinaryExpressionSyntax binary && binary.Right.Span.Contains(node.Span)
                    && binary.Kind() is SyntaxKind.LogicalAndExpression or SyntaxKind.LogicalOrExpression or SyntaxKind.CoalesceExpression)
                    return true;
            }
            return false;
        }

        /// <summary>Everything the statement evaluates before the call is free of effects, so evaluating the call first changes nothing.</summary>
        private static bool EarlierIsPure(SyntaxNode call, SyntaxNode statement)
        {
            for (SyntaxNode child = call, parent = call.Parent!; child != statement; child = parent, parent = parent.Parent!)
            {
                foreach (var sibling in parent.ChildNodes())
                {
                    if (sibling == child || sibling.SpanStart >= child.SpanStart) break;
                    if (!IsPure(sibling)) return false;
                }
            }
            return true;
        }

        private static bool IsPure(SyntaxNode node) => node switch
        {
            IdentifierNameSyntax or ThisExpressionSyntax or LiteralExpressionSyntax or PredefinedTypeSyntax or GenericNameSyntax => true,
            MemberAccessExpressionSyntax access => IsPure(access.Expression),
            ParenthesizedExpressionSyntax parenthesized => IsPure(parenthesized.Expression),
            ArgumentSyntax argument => IsPure(argument.Expression),
            ArgumentListSyntax list => list.Arguments.All(IsPure),
            VariableDeclarationSyntax or TypeSyntax => true,
            _ => false,
        };
    }
}
