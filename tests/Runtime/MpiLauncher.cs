using System;
using System.Diagnostics;
using System.IO;
using System.Threading.Tasks;

namespace Pippy.Tests.Runtime;

/// <summary>Starts real MPI jobs (MPICH's mpiexec) as child processes and collects what they print.</summary>
public static class MpiLauncher
{
    public sealed record Run(int ExitCode, string Output, string Errors);

    public static string RepositoryRoot() => Repository.Root();

    /// <summary>A built program of the repository (samples/NAME or tests/NAME), in the configuration this test was built with.</summary>
    public static string SampleDll(string name, string folder = "samples")
    {
        string configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}") ? "Release" : "Debug";
        string dll = Path.Combine(RepositoryRoot(), folder, name, "bin", configuration, "net10.0", name + ".dll");
        if (!File.Exists(dll)) throw new FileNotFoundException($"Build it first: dotnet build {folder}/{name}", dll);
        return dll;
    }

    /// <summary>MPICH's launcher: mpiexec.mpich where Open MPI may also be installed, else mpiexec.</summary>
    public static string Launcher() => File.Exists("/usr/bin/mpiexec.mpich") ? "/usr/bin/mpiexec.mpich" : "mpiexec";

    /// <summary>
    /// Runs tests/ParityApp with <paramref name="arguments"/> on <paramref name="ranks"/> ranks, logs what it printed,
    /// and asserts that it exited 0 and that no check printed MISMATCH.
    /// </summary>
    public static Run Parity(int ranks, string arguments, Xunit.Abstractions.ITestOutputHelper log, params (string Name, string? Value)[] environment)
    {
        var run = Start(ranks, SampleDll("ParityApp", "tests"), arguments, environment: environment);
        log.WriteLine(run.Output);
        log.WriteLine(run.Errors);
        Xunit.Assert.Equal(0, run.ExitCode);
        Xunit.Assert.DoesNotContain("MISMATCH", run.Output);
        return run;
    }

    /// <summary>Runs <c>dotnet DLL ARGS</c> as one process, without mpiexec, with extra environment variables.</summary>
    public static Run StartAlone(string dll, string arguments, params (string Name, string Value)[] environment)
    {
        var start = new ProcessStartInfo("dotnet", $"{dll} {arguments}") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var (name, value) in environment) start.Environment[name] = value;
        return Wait(start, 120, $"dotnet {Path.GetFileName(dll)} {arguments}");
    }

    /// <summary>
    /// Runs <c>mpiexec -n RANKS dotnet DLL ARGS</c>; a job still running after the timeout is killed and fails the test.
    /// An environment variable given a null value is removed.
    /// </summary>
    public static Run Start(int ranks, string dll, string arguments, int timeoutSeconds = 300, params (string Name, string? Value)[] environment) =>
        Wait(Command(Launcher(), $"-n {ranks} dotnet {dll} {arguments}", environment), timeoutSeconds, $"mpiexec -n {ranks} {Path.GetFileName(dll)} {arguments}");

    /// <summary>
    /// How to start <c>PROGRAM ARGS</c> with its output captured and extra environment variables (a null value removes
    /// one): for launches that <see cref="Start"/> does not make, such as mpiexec inside a network namespace.
    /// </summary>
    public static ProcessStartInfo Command(string program, string arguments, params (string Name, string? Value)[] environment)
    {
        var start = new ProcessStartInfo(program, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (name, value) in environment)
        {
            if (value is null) start.Environment.Remove(name);
            else start.Environment[name] = value;
        }
        return start;
    }

    /// <summary>Runs <paramref name="start"/> to its end; one still running after the timeout is killed with its children and fails the test.</summary>
    public static Run Wait(ProcessStartInfo start, int timeoutSeconds, string what)
    {
        using var process = Process.Start(start)!;
        Task<string> output = process.StandardOutput.ReadToEndAsync(), errors = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeoutSeconds * 1000))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{what} was still running after {timeoutSeconds} s (a hang). Output so far:\n{output.Result}");
        }
        return new Run(process.ExitCode, output.Result, errors.Result);
    }
}
