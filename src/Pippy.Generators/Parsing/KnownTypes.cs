using Microsoft.CodeAnalysis;

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
        }

        public INamedTypeSymbol? Module { get; }
        public INamedTypeSymbol? Tensor { get; }
        public INamedTypeSymbol? SplitEnd { get; }

        public bool IsModule(ITypeSymbol? type)
        {
            for (var t = type; t is not null; t = t.BaseType)
                if (SymbolEqualityComparer.Default.Equals(t, Module)) return true;
            return false;
        }

        public bool IsTensor(ITypeSymbol? type) => Tensor is not null && SymbolEqualityComparer.Default.Equals(type, Tensor);
    }
}
