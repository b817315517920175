namespace Pippy.Generators.Parsing
{
    /// <summary>
    /// The symbol each name of forward binds to, for the three readers of every identifier (data flow, stage code,
    /// module references). Each asks only whether a name is forward's parameter, one of its locals, or a member of the
    /// model, so most names are answered from forward's declarations and the model's members without binding forward
    /// (binding a long forward is most of what the generator costs): forward's parameters and the model's members by
    /// name; any name that forward declares itself (locals, lambda and loop variables, local functions) by Roslyn, as
    /// are the few cases a name alone cannot settle; every other name is none of the three (null). Answers are cached.
    /// </summary>
    internal sealed class SymbolLookup
    {
        private readonly Dictionary<SyntaxNode, ISymbol?> _symbols = new();
        private readonly Dictionary<string, IParameterSymbol> _parameters = new();
        private readonly HashSet<string> _declared = new();
        private readonly INamedTypeSymbol? _model;

        /// <summary>Every name is asked of Roslyn (tests compare the fast answers with these).</summary>
        public SymbolLookup(SemanticModel model) => Model = model;

        public SymbolLookup(SemanticModel model, MethodDeclarationSyntax forward, IMethodSymbol forwardSymbol, INamedTypeSymbol modelType) : this(model)
        {
            _model = modelType;
            foreach (var parameter in forwardSymbol.Parameters) _parameters[parameter.Name] = parameter;
            var body = (SyntaxNode?)forward.Body ?? forward.ExpressionBody;
            foreach (var node in body?.DescendantNodes() ?? Enumerable.Empty<SyntaxNode>())
            {
                switch (node)
                {
                    case VariableDeclaratorSyntax v: _declared.Add(v.Identifier.ValueText); break;
                    case ForEachStatementSyntax f: _declared.Add(f.Identifier.ValueText); break;
                    case SingleVariableDesignationSyntax d: _declared.Add(d.Identifier.ValueText); break;
                    case ParameterSyntax p: _declared.Add(p.Identifier.ValueText); break;
                    case LocalFunctionStatementSyntax l: _declared.Add(l.Identifier.ValueText); break;
                    case CatchDeclarationSyntax c: _declared.Add(c.Identifier.ValueText); break;
                    case QueryClauseSyntax or QueryContinuationSyntax: _declared.Add("*"); break; // range variables: ask Roslyn for everything
                }
            }
        }

        public SemanticModel Model { get; }

        /// <summary>
        /// True for the member name in <c>something.name</c> (not <c>this.name</c>): never a local, a parameter or one
        /// of the model's own members, so the parser need not ask what it binds to (a method group costs the most).
        /// </summary>
        public static bool IsOtherMemberName(SyntaxNode node) =>
            node.Parent is MemberAccessExpressionSyntax access && access.Name == node
            && access.Expression is not ThisExpressionSyntax;

        public ISymbol? Of(SyntaxNode node)
        {
            if (!_symbols.TryGetValue(node, out var symbol)) _symbols[node] = symbol = Find(node);
            return symbol;
        }

        private ISymbol? Find(SyntaxNode node)
        {
            // Names in a type or namespace position (Foo.Bar in a declaration or after new) follow other lookup rules.
            if (_model is null || node is not IdentifierNameSyntax identifier || _declared.Contains("*")
                || node.Parent is QualifiedNameSyntax or AliasQualifiedNameSyntax
                || Microsoft.CodeAnalysis.CSharp.SyntaxFacts.IsInNamespaceOrTypeContext(identifier))
                return Model.GetSymbolInfo(node).Symbol;
            string name = identifier.Identifier.ValueText;
            bool afterThis = node.Parent is MemberAccessExpressionSyntax { Expression: ThisExpressionSyntax } access && access.Name == node;
            if (!afterThis)
            {
                if (_declared.Contains(name)) return Model.GetSymbolInfo(node).Symbol;
                if (_parameters.TryGetValue(name, out var parameter)) return parameter;
            }
            // Members of the model and its base types, as C# looks them up: the nearest type that has the name.
            for (var type = _model; type is not null; type = type.BaseType)
            {
                var members = type.GetMembers(name).Where(m => m is IFieldSymbol or IPropertySymbol or IMethodSymbol or IEventSymbol).ToArray();
                if (members.Length == 0) continue;
                if (members.Length == 1 && members[0] is not IMethodSymbol) return members[0];
                // Methods: the overload only matters for static against instance; when they differ, Roslyn chooses.
                return members.All(m => m is IMethodSymbol) && members.Select(m => m.IsStatic).Distinct().Count() == 1
                    ? members[0]
                    : Model.GetSymbolInfo(node).Symbol;
            }
            return null; // a type, a namespace, a static import: none of the three
        }
    }
}
