namespace Pippy.Generators.Parsing
{
    /// <summary>The TorchSharp types the parser recognises, looked up once per compilation.</summary>
    internal sealed class KnownTypes
    {
        public KnownTypes(Compilation compilation)
        {
            Module = compilation.GetTypeByMetadataName("TorchSharp.torch+nn+Module");
            Tensor = compilation.GetTypeByMetadataName("TorchSharp.torch+Tensor");
            SplitEnd = compilation.GetTypeByMetadataName(PipelineGenerator.SplitEndAttributeName);
            SplitBegin = compilation.GetTypeByMetadataName(PipelineGenerator.SplitBeginAttributeName);
            PipelineSplit = compilation.GetTypeByMetadataName(PipelineGenerator.SplitMarkerClassName);
            TiedWeight = compilation.GetTypeByMetadataName(PipelineGenerator.TiedWeightAttributeName);
            SplitInto = compilation.GetTypeByMetadataName(PipelineGenerator.SplitIntoAttributeName);
            Recompute = compilation.GetTypeByMetadataName(PipelineGenerator.RecomputeAttributeName);
            ModuleList = compilation.GetTypeByMetadataName("TorchSharp.Modules.ModuleList`1");
            Sequential = compilation.GetTypeByMetadataName("TorchSharp.Modules.Sequential");
            DisposeScope = compilation.GetTypeByMetadataName("TorchSharp.DisposeScope");
            BatchNorm = compilation.GetTypeByMetadataName("TorchSharp.Modules.BatchNorm");
        }

        public INamedTypeSymbol? Module { get; }
        public INamedTypeSymbol? Tensor { get; }
        public INamedTypeSymbol? SplitEnd { get; }
        public INamedTypeSymbol? SplitBegin { get; }

        /// <summary>The class of the inline split marker, <c>PipelineSplit.Here()</c>.</summary>
        public INamedTypeSymbol? PipelineSplit { get; }
        public INamedTypeSymbol? TiedWeight { get; }
        public INamedTypeSymbol? SplitInto { get; }
        public INamedTypeSymbol? Recompute { get; }
        public INamedTypeSymbol? ModuleList { get; }
        public INamedTypeSymbol? DisposeScope { get; }
        public INamedTypeSymbol? Sequential { get; }

        /// <summary>True for TorchSharp's <c>Sequential</c> (or a class derived from it).</summary>
        public bool IsSequential(ITypeSymbol? type) => DerivesFrom(type, Sequential);

        /// <summary>
        /// True for a class derived from Sequential that declares its own forward (somewhere below Sequential): running
        /// its children in order, as a divided Sequential's stages do, would skip that code.
        /// </summary>
        public bool OverridesSequentialForward(ITypeSymbol? type)
        {
            if (Sequential is null) return false;
            for (var t = type; t is not null && !SymbolEqualityComparer.Default.Equals(t.OriginalDefinition, Sequential); t = t.BaseType)
                if (t.GetMembers("forward").Any(m => m is IMethodSymbol { IsOverride: true })) return true;
            return false;
        }

        /// <summary>The base of TorchSharp's BatchNorm1d/2d/3d: modules that normalise by the batch's statistics in training.</summary>
        public INamedTypeSymbol? BatchNorm { get; }

        /// <summary>True when <paramref name="type"/> is <paramref name="baseType"/> or derives from it.</summary>
        public static bool DerivesFrom(ITypeSymbol? type, INamedTypeSymbol? baseType)
        {
            if (baseType is null) return false;
            for (var t = type; t is not null; t = t.BaseType)
                if (SymbolEqualityComparer.Default.Equals(t.OriginalDefinition, baseType)) return true;
            return false;
        }

        /// <summary>The block type T of a <c>ModuleList&lt;T&gt;</c>, or null.</summary>
        public ITypeSymbol? ModuleListElement(ITypeSymbol? type) =>
            type is INamedTypeSymbol { IsGenericType: true } named && SymbolEqualityComparer.Default.Equals(named.OriginalDefinition, ModuleList)
                ? named.TypeArguments[0]
                : null;

        /// <summary>The element types of a tuple of 2 to 4 tensors, or null.</summary>
        public bool IsTensorTuple(ITypeSymbol type, out int arity)
        {
            arity = 0;
            if (type is not INamedTypeSymbol { IsTupleType: true } tuple) return false;
            var elements = tuple.TupleElements;
            arity = elements.Length;
            return arity is >= 2 and <= 4 && elements.All(e => IsTensor(e.Type));
        }

        public bool IsModule(ITypeSymbol? type)
        {
            for (var t = type; t is not null; t = t.BaseType)
                if (SymbolEqualityComparer.Default.Equals(t, Module)) return true;
            return false;
        }

        public bool IsTensor(ITypeSymbol? type) => Tensor is not null && SymbolEqualityComparer.Default.Equals(type, Tensor);

        /// <summary>
        /// A type forward may take besides tensors: a value every stage that reads it is given as it is, the same on
        /// every microbatch (bool, char, the integer types, float, double, string, an enum). Every rank must be able to
        /// compare it with the other ranks' value, which these types' invariant text allows.
        /// </summary>
        public static bool IsPlainArgument(ITypeSymbol type) =>
            type.TypeKind == TypeKind.Enum
            || type.SpecialType is SpecialType.System_Boolean or SpecialType.System_Char or SpecialType.System_SByte or SpecialType.System_Byte
                or SpecialType.System_Int16 or SpecialType.System_UInt16 or SpecialType.System_Int32 or SpecialType.System_UInt32
                or SpecialType.System_Int64 or SpecialType.System_UInt64 or SpecialType.System_Single or SpecialType.System_Double
                or SpecialType.System_String;
    }
}
