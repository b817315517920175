namespace Pippy.Generators.Parsing
{
    /// <summary>The model's type, forward's result and forward's variables as plain data, with types named as generated code names them.</summary>
    internal static class TypeReader
    {
        /// <summary>Fully qualified (<c>global::</c>) with C# keywords for special types: how the generated code names types.</summary>
        public static readonly SymbolDisplayFormat TypeFormat = SymbolDisplayFormat.FullyQualifiedFormat
            .WithMiscellaneousOptions(SymbolDisplayMiscellaneousOptions.UseSpecialTypes);

        /// <summary>forward's result as a pipeline returns it (a tensor or a tuple of tensors), or null for any other type.</summary>
        public static OutputSpec? ReadOutput(ITypeSymbol type, KnownTypes known)
        {
            string display = type.ToDisplayString(TypeFormat);
            if (known.IsTensor(type)) return new OutputSpec(display, new[] { "output" }.ToEquatableArray());
            if (known.IsTensorTuple(type, out _))
                return new OutputSpec(display, ((INamedTypeSymbol)type).TupleElements.Select(e => "output." + e.Name).ToEquatableArray());
            return null;
        }

        /// <summary>Where the generated partial declarations go: namespace, containing types, and the usings forward's file has.</summary>
        public static TypeSpec ReadTypeSpec(INamedTypeSymbol type, MethodDeclarationSyntax forward)
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

        /// <summary>A variable of forward: its type as generated code writes it, and whether it is a tensor.</summary>
        public static VariableSpec Variable(string name, ITypeSymbol type, KnownTypes known) =>
            new VariableSpec(name, type.ToDisplayString(TypeFormat), known.IsTensor(type));

        /// <summary>A parameter of forward: a variable that may also be a plain argument (see <see cref="KnownTypes.IsPlainArgument"/>).</summary>
        public static VariableSpec Parameter(IParameterSymbol parameter, KnownTypes known) =>
            Variable(parameter.Name, parameter.Type, known) with { IsPlainArgument = parameter.RefKind == RefKind.None && KnownTypes.IsPlainArgument(parameter.Type) };
    }
}
