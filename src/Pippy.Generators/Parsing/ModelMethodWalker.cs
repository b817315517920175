namespace Pippy.Generators.Parsing
{
    /// <summary>
    /// Follows forward's calls into the model's own instance methods and property getters, transitively, and collects
    /// the submodule members they use, so that those submodules belong to the stage of the forward statement that makes
    /// the call. Where it cannot follow (a method a derived class may override, recursion, a delegate stored in a
    /// field, a method of another class that is handed the model) and the code there uses submodules, it reports
    /// PIPPY0028: a stage would run those submodules without holding them, and no rank would train their parameters.
    /// </summary>
    internal sealed class ModelMethodWalker
    {
        private readonly Compilation _compilation;
        private readonly INamedTypeSymbol _model;
        private readonly IMethodSymbol _forward;
        private readonly KnownTypes _known;
        private readonly List<DiagnosticInfo> _diagnostics;
        private readonly Dictionary<IMethodSymbol, List<(string Member, bool InBranch)>> _done = new(SymbolEqualityComparer.Default);
        private readonly Dictionary<ISymbol, List<(string Member, bool InBranch)>> _delegates = new(SymbolEqualityComparer.Default);
        private readonly List<IMethodSymbol> _stack = new();
        private readonly HashSet<IMethodSymbol> _recursive = new(SymbolEqualityComparer.Default);
        private readonly HashSet<ISymbol> _reported = new(SymbolEqualityComparer.Default);

        public ModelMethodWalker(Compilation compilation, INamedTypeSymbol model, IMethodSymbol forward, KnownTypes known, List<DiagnosticInfo> diagnostics)
        {
            _compilation = compilation;
            _model = model;
            _forward = forward;
            _known = known;
            _diagnostics = diagnostics;
        }

        /// <summary>The submodules a statement of forward uses through methods and getters of the model (not its direct uses).</summary>
        public List<MethodUseSpec> UsesThroughMethods(SyntaxNode statement, SymbolLookup symbols)
        {
            ISymbol? SymbolOf(SyntaxNode node)
            {
                var symbol = symbols.Of(node);
                // The lookup answers a method name with one of its overloads; which one matters here.
                if (symbol is IMethodSymbol && _model.GetMembers(symbol.Name).OfType<IMethodSymbol>().Count() > 1)
                    symbol = symbols.Model.GetSymbolInfo(node).Symbol;
                return symbol;
            }
            return Scan(statement, SymbolOf, direct: false).Select(u => new MethodUseSpec(u.Member, u.Via!, u.InBranch)).ToList();
        }

        /// <summary>[SplitEnd] members used in methods of the model that forward does not reach, with those methods' names.</summary>
        public List<MethodUseSpec> UnreachedUses(ICollection<string> members)
        {
            var result = new List<MethodUseSpec>();
            if (members.Count == 0) return result;
            foreach (var method in _model.GetMembers().OfType<IMethodSymbol>())
            {
                if (method.MethodKind is not (MethodKind.Ordinary or MethodKind.PropertyGet)
                    || SymbolEqualityComparer.Default.Equals(method, _forward) || Body(method) is not { } body) continue;
                var semanticModel = _compilation.GetSemanticModel(body.SyntaxTree);
                foreach (var identifier in body.DescendantNodesAndSelf().OfType<IdentifierNameSyntax>())
                {
                    string name = identifier.Identifier.ValueText;
                    if (!members.Contains(name) || !IsModelModule(semanticModel.GetSymbolInfo(identifier).Symbol)) continue;
                    string methodName = method.AssociatedSymbol?.Name ?? method.Name;
                    if (!result.Any(u => u.Member == name && u.Method == methodName)) result.Add(new MethodUseSpec(name, methodName, false));
                }
            }
            return result;
        }

        /// <summary>
        /// Submodule uses under <paramref name="root"/>: direct ones (when <paramref name="direct"/>; Via null) and those
        /// through the model's methods and getters (Via: the method called here).
        /// </summary>
        private List<(string Member, bool InBranch, string? Via)> Scan(SyntaxNode root, Func<SyntaxNode, ISymbol?> symbolOf, bool direct)
        {
            var uses = new List<(string Member, bool InBranch, string? Via)>();
            foreach (var node in root.DescendantNodesAndSelf())
            {
                if (node is ThisExpressionSyntax self)
                {
                    CheckModelHandedOut(self, symbolOf);
                    continue;
                }
                if (node is not IdentifierNameSyntax identifier || SymbolLookup.IsOtherMemberName(identifier)) continue;
                var symbol = symbolOf(identifier);
                if (symbol is null || symbol.IsStatic || !SymbolEqualityComparer.Default.Equals(symbol.ContainingType, _model)) continue;
                bool inBranch = StatementReader.IsInBranch(identifier, root);
                switch (symbol)
                {
                    case IFieldSymbol or IPropertySymbol when IsModelModule(symbol):
                        if (direct) uses.Add((symbol.Name, inBranch, null));
                        break;
                    case IFieldSymbol or IPropertySymbol when TypeOf(symbol) is { TypeKind: TypeKind.Delegate }:
                        CheckDelegate(symbol, identifier);
                        break;
                    case IPropertySymbol { GetMethod: { } getter } property:
                        foreach (var use in Follow(getter, identifier)) uses.Add((use.Member, inBranch || use.InBranch, property.Name));
                        break;
                    case IMethodSymbol { MethodKind: MethodKind.Ordinary } method when !SymbolEqualityComparer.Default.Equals(method.OriginalDefinition, _forward):
                        foreach (var use in Follow(method, identifier)) uses.Add((use.Member, inBranch || use.InBranch, method.Name));
                        break;
                }
            }
            return uses;
        }

        /// <summary>The submodules a method of the model uses, directly or through the methods it calls.</summary>
        private List<(string Member, bool InBranch)> Follow(IMethodSymbol method, SyntaxNode site)
        {
            method = method.PartialImplementationPart ?? method.OriginalDefinition;
            if (_stack.Contains(method, SymbolEqualityComparer.Default))
            {
                _recursive.Add(method);
                return new List<(string, bool)>();
            }
            if (_done.TryGetValue(method, out var known)) return known;
            if (Body(method) is not { } body) return _done[method] = new List<(string, bool)>();

            _stack.Add(method);
            var semanticModel = _compilation.GetSemanticModel(body.SyntaxTree);
            var uses = Scan(body, n => semanticModel.GetSymbolInfo(n).Symbol, direct: true)
                .Select(u => (u.Member, u.InBranch)).Distinct().ToList();
            _stack.RemoveAt(_stack.Count - 1);
            _done[method] = uses;

            string name = method.AssociatedSymbol is IPropertySymbol property ? $"property '{property.Name}'" : $"method '{method.Name}'";
            bool overridable = (method.IsVirtual || method.IsAbstract || (method.IsOverride && !method.IsSealed)) && !_model.IsSealed;
            if (overridable)
                Report(method, site, $"{name} (a derived class may override it)", uses,
                    $"make '{method.Name}' non-virtual or sealed (or seal the model), or call the submodules from forward");
            else if (_recursive.Contains(method))
                Report(method, site, $"the recursive {name}", uses,
                    $"turn the recursion of '{method.Name}' into a loop, in forward or in a method that does not call itself");
            return uses;
        }

        /// <summary>A delegate field or property of the model: the lambdas and method groups stored in it, wherever the model assigns it.</summary>
        private void CheckDelegate(ISymbol member, SyntaxNode site)
        {
            if (_delegates.ContainsKey(member)) return;
            var uses = _delegates[member] = new List<(string, bool)>();
            var values = new List<ExpressionSyntax>();
            foreach (var reference in member.DeclaringSyntaxReferences)
            {
                switch (reference.GetSyntax())
                {
                    case VariableDeclaratorSyntax { Initializer: { } initializer }: values.Add(initializer.Value); break;
                    case PropertyDeclarationSyntax { Initializer: { } initializer }: values.Add(initializer.Value); break;
                    case PropertyDeclarationSyntax { ExpressionBody: { } arrow }: values.Add(arrow.Expression); break;
                }
            }
            foreach (var declaration in _model.DeclaringSyntaxReferences.Select(r => r.GetSyntax()))
            {
                var semanticModel = _compilation.GetSemanticModel(declaration.SyntaxTree);
                foreach (var assignment in declaration.DescendantNodes().OfType<AssignmentExpressionSyntax>())
                {
                    var target = assignment.Left is MemberAccessExpressionSyntax access ? access.Name : assignment.Left;
                    if (target is IdentifierNameSyntax name && name.Identifier.ValueText == member.Name
                        && SymbolEqualityComparer.Default.Equals(semanticModel.GetSymbolInfo(target).Symbol, member))
                        values.Add(assignment.Right);
                }
            }
            foreach (var value in values)
            {
                var semanticModel = _compilation.GetSemanticModel(value.SyntaxTree);
                uses.AddRange(Scan(value, n => semanticModel.GetSymbolInfo(n).Symbol, direct: true).Select(u => (u.Member, u.InBranch)));
            }
            Report(member, site, $"the delegate stored in '{member.Name}'", uses,
                "call a method of the model (or the submodules) from forward instead of a delegate kept in a field");
        }

        /// <summary><c>this</c> handed to a method of another class (as an argument or an extension method's receiver).</summary>
        private void CheckModelHandedOut(ThisExpressionSyntax self, Func<SyntaxNode, ISymbol?> symbolOf)
        {
            SyntaxNode? call = self.Parent switch
            {
                ArgumentSyntax { Parent: ArgumentListSyntax { Parent: InvocationExpressionSyntax invocation } } => invocation,
                MemberAccessExpressionSyntax { Parent: InvocationExpressionSyntax invocation } access when access.Expression == self => invocation,
                _ => null,
            };
            if (call is not InvocationExpressionSyntax invocationSyntax) return;
            var semanticModel = _compilation.GetSemanticModel(invocationSyntax.SyntaxTree);
            if (semanticModel.GetSymbolInfo(invocationSyntax).Symbol is not IMethodSymbol target) return;
            target = target.ReducedFrom ?? target;
            if (SymbolEqualityComparer.Default.Equals(target.ContainingType, _model) || Body(target) is not { } body) return;
            // The other class reaches the model's submodules by their names (model.fc3): those are what it uses.
            var bodyModel = _compilation.GetSemanticModel(body.SyntaxTree);
            var uses = body.DescendantNodesAndSelf().OfType<IdentifierNameSyntax>()
                .Where(i => IsModelModule(bodyModel.GetSymbolInfo(i).Symbol))
                .Select(i => (i.Identifier.ValueText, false)).ToList();
            Report(target, self, $"'{target.ContainingType.Name}.{target.Name}', a method of another class that is handed the model", uses,
                $"move that code into a method of '{_model.Name}', or pass the submodules themselves as arguments");
        }

        private void Report(ISymbol what, SyntaxNode site, string description, List<(string Member, bool InBranch)> uses, string fix)
        {
            if (uses.Count == 0 || !_reported.Add(what)) return;
            string members = string.Join(", ", uses.Select(u => $"'{u.Member}'").Distinct());
            _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnfollowableSubmoduleUse, LocationInfo.From(site.GetLocation()), description, members, fix));
        }

        private bool IsModelModule(ISymbol? symbol) =>
            symbol is IFieldSymbol or IPropertySymbol && !symbol.IsStatic
            && SymbolEqualityComparer.Default.Equals(symbol.ContainingType, _model) && _known.IsModule(TypeOf(symbol));

        private static ITypeSymbol? TypeOf(ISymbol symbol) => symbol switch
        {
            IFieldSymbol f => f.Type,
            IPropertySymbol p => p.Type,
            _ => null,
        };

        /// <summary>The code of a method or accessor declared in source (its block or arrow), or null.</summary>
        private static SyntaxNode? Body(IMethodSymbol method)
        {
            foreach (var reference in method.DeclaringSyntaxReferences)
            {
                switch (reference.GetSyntax())
                {
                    case BaseMethodDeclarationSyntax m when m.Body is not null || m.ExpressionBody is not null: return (SyntaxNode?)m.Body ?? m.ExpressionBody;
                    case AccessorDeclarationSyntax a when a.Body is not null || a.ExpressionBody is not null: return (SyntaxNode?)a.Body ?? a.ExpressionBody;
                    case ArrowExpressionClauseSyntax arrow: return arrow;
                }
            }
            return null;
        }
    }
}
