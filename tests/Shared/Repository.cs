using System;
using System.IO;

namespace Pippy.Tests;

/// <summary>Where the repository is, for tests that read its files or run its programs (linked into each test project).</summary>
internal static class Repository
{
    public static string Root()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Pippy.Generators.sln"))) return dir.FullName;
        throw new InvalidOperationException("Pippy.Generators.sln not found above " + AppContext.BaseDirectory);
    }
}
