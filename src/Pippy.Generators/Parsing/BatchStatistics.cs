namespace Pippy.Generators.Parsing
{
    /// <summary>
    /// Finds the submodules that forward uses and that hold a module normalising by batch statistics (TorchSharp's
    /// BatchNorm1d/2d/3d), directly or inside a block: a pipeline runs them on one microbatch at a time (PIPPY0026).
    /// </summary>
    internal static class BatchStatistics
    {
        private const int MaxDepth = 6;

        public static IEnumerable<DiagnosticInfo> Find(INamedTypeSymbol model, KnownTypes known, IEnumerable<StatementSpec> statements, int microbatches)
        {
            if (known.BatchNorm is null || microbatches == 1) yield break;
            var used = new HashSet<string>(statements.SelectMany(s => s.ModuleReferences));
            foreach (var member in model.GetMembers())
            {
                if (!used.Contains(member.Name)) continue;
                var type = member switch
                {
                    IFieldSymbol { IsStatic: false } f => f.Type,
                    IPropertySymbol { IsStatic: false, IsIndexer: false } p => p.Type,
                    _ => null,
                };
                if (type is null) continue;
                var found = Search(type, member.Name, known, new HashSet<ITypeSymbol>(SymbolEqualityComparer.Default), 0);
                if (found is null) continue;
                yield return DiagnosticInfo.Create(DiagnosticDescriptors.BatchStatistics, LocationInfo.From(member.Locations[0]),
                    found.Value.Path, model.Name, found.Value.Type.Name);
            }
        }

        /// <summary>The path of the first batch-statistics module in <paramref name="type"/> (itself, a field, a list's block).</summary>
        private static (string Path, ITypeSymbol Type)? Search(ITypeSymbol type, string path, KnownTypes known, HashSet<ITypeSymbol> seen, int depth)
        {
            if (KnownTypes.DerivesFrom(type, known.BatchNorm)) return (path, type);
            if (depth >= MaxDepth || !known.IsModule(type) || !seen.Add(type)) return null;
            if (known.ModuleListElement(type) is { } element)
                return Search(element, path + "[i]", known, seen, depth + 1);
            // The block's own fields and properties (and its base classes' declared in source), not TorchSharp's internals.
            for (var t = type; t is not null && t.Locations.Any(l => l.IsInSource); t = t.BaseType)
            {
                foreach (var member in t.GetMembers())
                {
                    var memberType = member switch
                    {
                        IFieldSymbol { IsStatic: false, IsImplicitlyDeclared: false } f => f.Type,
                        IPropertySymbol { IsStatic: false, IsIndexer: false } p => p.Type,
                        _ => null,
                    };
                    if (memberType is null || !known.IsModule(memberType)) continue;
                    if (Search(memberType, $"{path}.{member.Name}", known, seen, depth + 1) is { } found) return found;
                }
            }
            return null;
        }
    }
}
