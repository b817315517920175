using System.Collections.Generic;
using Microsoft.CodeAnalysis;

namespace Pippy.Generators.Parsing
{
    /// <summary>
    /// The symbol each name of forward binds to, asked of Roslyn once per node: the parser reads every identifier
    /// three times (data flow, stage code, module references), and each semantic-model query costs tens of
    /// microseconds even after the method is bound.
    /// </summary>
    internal sealed class SymbolLookup
    {
        private readonly Dictionary<SyntaxNode, ISymbol?> _symbols = new();

        public SymbolLookup(SemanticModel model) => Model = model;

        public SemanticModel Model { get; }

        /// <summary>
        /// True for the member name in <c>something.name</c> (not <c>this.name</c>): never a local, a parameter or one
        /// of the model's own members, so the parser need not ask what it binds to (a method group costs the most).
        /// </summary>
        public static bool IsOtherMemberName(SyntaxNode node) =>
            node.Parent is Microsoft.CodeAnalysis.CSharp.Syntax.MemberAccessExpressionSyntax access && access.Name == node
            && access.Expression is not Microsoft.CodeAnalysis.CSharp.Syntax.ThisExpressionSyntax;

        public ISymbol? Of(SyntaxNode node)
        {
            if (!_symbols.TryGetValue(node, out var symbol)) _symbols[node] = symbol = Model.GetSymbolInfo(node).Symbol;
            return symbol;
        }
    }
}
