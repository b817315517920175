using System;
using System.Diagnostics;
using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Runtime;

/// <summary>Runs the dotnet CLI as a user would (pack, new, build), logging what it printed.</summary>
public static class DotnetCli
{
    /// <summary>Runs <c>dotnet ARGUMENTS</c> in <paramref name="directory"/> and asserts that it exited 0 within 10 minutes.</summary>
    public static void Run(ITestOutputHelper log, string arguments, string directory)
    {
        var start = new ProcessStartInfo("dotnet", arguments) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        // MSBuild worker nodes left alive would hold this process's output pipes open.
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(10)), $"dotnet {arguments} did not finish in 10 minutes");
        log.WriteLine($"$ dotnet {arguments}\n{output.Result}{errors.Result}");
        Assert.True(process.ExitCode == 0, $"dotnet {arguments} failed ({process.ExitCode}):\n{output.Result}\n{errors.Result}");
    }
}
