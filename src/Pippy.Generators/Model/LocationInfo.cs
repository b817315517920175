using Microsoft.CodeAnalysis.Text;

namespace Pippy.Generators.Model
{
    /// <summary>A source location as plain data (a <see cref="Location"/> holds the syntax tree and would defeat caching).</summary>
    internal sealed record LocationInfo(string FilePath, TextSpan Span, LinePositionSpan LineSpan)
    {
        public Location ToLocation() => Location.Create(FilePath, Span, LineSpan);

        public static LocationInfo? From(SyntaxNode node) => From(node.GetLocation());

        public static LocationInfo? From(Location location) =>
            location.SourceTree is null ? null : new LocationInfo(location.SourceTree.FilePath, location.SourceSpan, location.GetLineSpan().Span);
    }
}
