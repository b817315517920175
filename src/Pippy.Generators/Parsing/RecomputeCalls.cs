namespace Pippy.Generators.Parsing
{
    /// <summary>
    /// The calls of [Recompute] submodules in forward: which member a call's receiver is (the member itself, an element
    /// of it, or a foreach variable over it), the stage code that runs such a call through the runtime's
    /// <c>BlockRecomputation</c>, and what was found: the members whose calls were rewritten and the calls that cannot be.
    /// </summary>
    internal sealed class RecomputeCalls
    {
        private const string Runner = "global::Pippy.Runtime.BlockRecomputation.Run";
        private readonly HashSet<string> _members;
        private readonly INamedTypeSymbol _modelType;

        public RecomputeCalls(INamedTypeSymbol modelType, KnownTypes known)
        {
            _modelType = modelType;
            _members = new HashSet<string>(modelType.GetMembers()
                .Where(m => m is IFieldSymbol or IPropertySymbol && m.GetAttributes().Any(a => SymbolEqualityComparer.Default.Equals(a.AttributeClass, known.Recompute)))
                .Select(m => m.Name));
        }

        /// <summary>The [Recompute] members of the model.</summary>
        public IReadOnlyCollection<string> Members => _members;

        /// <summary>Members at least one call of which runs recomputed.</summary>
        public HashSet<string> Recomputed { get; } = new();

        public List<DiagnosticInfo> Diagnostics { get; } = new();

        /// <summary>The [Recompute] member that <paramref name="receiver"/> (of <c>receiver.forward(...)</c>) is or runs an element of; null for any other.</summary>
        public string? MemberOf(ExpressionSyntax receiver, SymbolLookup symbols)
        {
            if (_members.Count == 0) return null;
            for (int depth = 0; depth < 2; depth++)
            {
                var e = receiver;
                if (e is ElementAccessExpressionSyntax element) e = element.Expression;
                if (e is MemberAccessExpressionSyntax { Expression: ThisExpressionSyntax } viaThis) e = viaThis.Name;
                if (e is not IdentifierNameSyntax identifier) return null;
                var symbol = symbols.Of(identifier);
                if (symbol is IFieldSymbol or IPropertySymbol)
                    return _members.Contains(symbol.Name) && IsOnModel(symbol) ? symbol.Name : null;
                // foreach (var block in blocks): the loop's variable runs the list's blocks.
                if (symbol is ILocalSymbol local && local.DeclaringSyntaxReferences.FirstOrDefault()?.GetSyntax() is ForEachStatementSyntax loop)
                {
                    receiver = loop.Expression;
                    continue;
                }
                return null;
            }
            return null;
        }

        /// <summary>Why <paramref name="call"/> cannot run recomputed, or null when it can: it takes tensors and returns one.</summary>
        public string? Unsupported(InvocationExpressionSyntax call, SemanticModel model, KnownTypes known)
        {
            if (model.GetSymbolInfo(call).Symbol is not IMethodSymbol method) return "does not bind to one method";
            if (!known.IsTensor(method.ReturnType)) return $"returns {method.ReturnType.ToDisplayString()}";
            foreach (var argument in call.ArgumentList.Arguments)
            {
                if (!argument.RefKindKeyword.IsKind(SyntaxKind.None)) return $"passes '{argument}' by reference";
                if (!known.IsTensor(model.GetTypeInfo(argument.Expression).Type)) return $"passes '{argument.Expression}', which is not a tensor";
            }
            if (method.Parameters.Length != call.ArgumentList.Arguments.Count) return "leaves optional parameters to their defaults";
            return null;
        }

        /// <summary>
        /// The stage code of a recomputed call: <c>Run(receiver, static (__block, __tensors) =&gt; __block.method(__tensors[0], ...), arguments...)</c>.
        /// The receiver is evaluated once, at the call (a loop's current block), and the block is run again in the backward.
        /// </summary>
        public static string Code(string receiver, string method, IReadOnlyList<(string? Name, string Expression)> arguments)
        {
            var inLambda = arguments.Select((a, i) => (a.Name is null ? "" : a.Name + ": ") + $"__tensors[{i}]");
            var passed = string.Concat(arguments.Select(a => ", " + a.Expression));
            return $"{Runner}({receiver}, static (__block, __tensors) => __block.{method}({string.Join(", ", inLambda)}){passed})";
        }

        private bool IsOnModel(ISymbol symbol)
        {
            for (var t = _modelType; t is not null; t = t.BaseType)
                if (SymbolEqualityComparer.Default.Equals(symbol.ContainingType, t)) return true;
            return false;
        }
    }
}
