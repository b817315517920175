using Xunit;

namespace Pippy.Tests.Runtime;

/// <summary>
/// The tests that pack the repository's projects in Release (PackageTests, TemplateTests): each packs with a version of
/// its own, which rebuilds the same bin/Release and obj/Release folders, so they run one after the other.
/// </summary>
[CollectionDefinition(nameof(ReleasePackingCollection))]
public sealed class ReleasePackingCollection;
