namespace Pippy.Generators.Parsing
{
    /// <summary>
    /// Rewrites one statement of the model's forward into the code of a stage class nested in the model:
    /// submodule members keep their names (the stage holds fields of the same names), any other instance member of
    /// the model is reached through the stage's <c>__model</c> field, and the last stage's <c>return e;</c>
    /// becomes <c>return Outputs(e);</c> (a tensor array, also for a tuple).
    /// </summary>
    internal sealed class StageCodeRewriter : CSharpSyntaxRewriter
    {
        public const string ModelField = "__model";

        /// <summary>PipelineStage's helper turning forward's result (a tensor or a tuple of tensors) into the stage's outputs.</summary>
        public const string OutputsHelper = "Outputs";

        private readonly SymbolLookup _symbols;
        private readonly INamedTypeSymbol _modelType;
        private readonly KnownTypes _known;
        private readonly RecomputeCalls? _recompute;

        public StageCodeRewriter(SymbolLookup symbols, INamedTypeSymbol modelType, KnownTypes known, RecomputeCalls? recompute = null)
        {
            _symbols = symbols;
            _modelType = modelType;
            _known = known;
            _recompute = recompute;
        }

        public bool UsesModel { get; private set; }
        public bool Returns { get; private set; }

        public override SyntaxNode? VisitIdentifierName(IdentifierNameSyntax node)
        {
            bool isMemberName = node.Parent is MemberAccessExpressionSyntax access && access.Name == node;
            if (isMemberName || !IsModelInstanceMember(_symbols.Of(node), out bool isModule) || isModule)
                return base.VisitIdentifierName(node);
            UsesModel = true;
            return SyntaxFactory.MemberAccessExpression(SyntaxKind.SimpleMemberAccessExpression, SyntaxFactory.IdentifierName(ModelField), node.WithoutTrivia())
                .WithTriviaFrom(node);
        }

        public override SyntaxNode? VisitThisExpression(ThisExpressionSyntax node)
        {
            // this.submodule stays (the stage has that field); any other use of this means the model.
            if (node.Parent is MemberAccessExpressionSyntax access && access.Expression == node
                && IsModelInstanceMember(_symbols.Of(access.Name), out bool isModule) && isModule)
                return base.VisitThisExpression(node);
            UsesModel = true;
            return SyntaxFactory.IdentifierName(ModelField).WithTriviaFrom(node);
        }

        /// <summary>A call of a [Recompute] submodule (<c>block.forward(x)</c>) runs through the runtime's BlockRecomputation.</summary>
        public override SyntaxNode? VisitInvocationExpression(InvocationExpressionSyntax node)
        {
            if (_recompute is null || node.Expression is not MemberAccessExpressionSyntax { Name.Identifier.ValueText: "forward" or "call" } access
                || _recompute.MemberOf(access.Expression, _symbols) is not { } member)
                return base.VisitInvocationExpression(node);
            if (_recompute.Unsupported(node, _symbols.Model, _known) is { } why)
            {
                _recompute.Diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.RecomputeUnsupportedCall, LocationInfo.From(node), node.ToString(), member, why));
                return base.VisitInvocationExpression(node);
            }
            _recompute.Recomputed.Add(member);
            var receiver = (ExpressionSyntax)Visit(access.Expression)!;
            var arguments = node.ArgumentList.Arguments
                .Select(a => (a.NameColon?.Name.Identifier.ValueText, ((ExpressionSyntax)Visit(a.Expression)!).WithoutTrivia().ToFullString()))
                .ToList();
            string code = RecomputeCalls.Code(receiver.WithoutTrivia().ToFullString(), access.Name.Identifier.ValueText, arguments);
            return SyntaxFactory.ParseExpression(code).WithTriviaFrom(node);
        }

        public override SyntaxNode? VisitReturnStatement(ReturnStatementSyntax node)
        {
            if (IsInsideFunction(node) || node.Expression is null) return base.VisitReturnStatement(node);
            Returns = true;
            var value = (ExpressionSyntax)Visit(node.Expression)!;
            var outputs = SyntaxFactory.InvocationExpression(
                SyntaxFactory.IdentifierName(OutputsHelper),
                SyntaxFactory.ArgumentList(SyntaxFactory.SingletonSeparatedList(SyntaxFactory.Argument(value.WithoutTrivia()))));
            return node.WithExpression(outputs.WithTriviaFrom(node.Expression));
        }

        /// <summary>
        /// For a top-level <c>using var</c> declaration of forward (<paramref name="original"/>, and its stage code
        /// <paramref name="rewritten"/>): what it declares, and the statement without <c>using</c>. Null for any other statement.
        /// </summary>
        public static (string[] Names, Model.UsingKind Kind, string Type, StatementSyntax WithoutUsing)? ReadUsing(
            StatementSyntax original, StatementSyntax rewritten, SymbolLookup symbols, KnownTypes known)
        {
            if (original is not LocalDeclarationStatementSyntax { UsingKeyword.RawKind: (int)SyntaxKind.UsingKeyword } declaration
                || rewritten is not LocalDeclarationStatementSyntax copy)
                return null;
            var type = symbols.Model.GetTypeInfo(declaration.Declaration.Type).Type;
            var kind = KnownTypes.DerivesFrom(type, known.Tensor) ? Model.UsingKind.Tensor
                : KnownTypes.DerivesFrom(type, known.DisposeScope) ? Model.UsingKind.DisposeScope
                : Model.UsingKind.Other;
            // The using keyword's leading trivia (comments, indentation) moves to what now starts the statement.
            var usingKeyword = copy.UsingKeyword;
            var withoutUsing = copy.WithUsingKeyword(SyntaxFactory.Token(SyntaxKind.None))
                .WithDeclaration(copy.Declaration.WithType(copy.Declaration.Type.WithLeadingTrivia(usingKeyword.LeadingTrivia)));
            var names = declaration.Declaration.Variables.Select(v => v.Identifier.ValueText).ToArray();
            return (names, kind, type?.ToDisplayString() ?? declaration.Declaration.Type.ToString(), withoutUsing);
        }

        private bool IsModelInstanceMember(ISymbol? symbol, out bool isModule)
        {
            isModule = false;
            if (symbol is null || symbol.IsStatic || symbol is not (IFieldSymbol or IPropertySymbol or IMethodSymbol or IEventSymbol)) return false;
            if (symbol is IMethodSymbol { MethodKind: MethodKind.LocalFunction }) return false;
            bool onModel = false;
            for (var t = _modelType; t is not null; t = t.BaseType)
                if (SymbolEqualityComparer.Default.Equals(symbol.ContainingType, t)) onModel = true;
            if (!onModel) return false;
            isModule = symbol switch
            {
                IFieldSymbol f => _known.IsModule(f.Type),
                IPropertySymbol p => _known.IsModule(p.Type),
                _ => false,
            };
            return true;
        }

        private static bool IsInsideFunction(SyntaxNode node)
        {
            for (var n = node.Parent; n is not null; n = n.Parent)
            {
                if (n is AnonymousFunctionExpressionSyntax or LocalFunctionStatementSyntax) return true;
                if (n is MethodDeclarationSyntax) return false;
            }
            return false;
        }
    }
}
