using System.Linq;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Runtime;

/// <summary>What Build prints about the GPU transport on real ranks (no GPU here: the CPU runs' side of it).</summary>
public class GpuTransportLineTests(ITestOutputHelper log)
{
    /// <summary>The start-up line is rank 0's, once per Build, and only where tensors are on a GPU or the variable is set: CPU runs print as before.</summary>
    [Fact]
    public void TheTransportLineIsPrintedOnlyForGpusOrAnOverride()
    {
        string directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"pippy-ipc-line-{System.Guid.NewGuid():N}");
        var plain = MpiLauncher.Parity(2, $"grid {directory} \"tied | interleaved-1F1B (2 per rank looped) | step\"", log);
        Assert.DoesNotContain("transport:", plain.Output);
        var forced = MpiLauncher.Parity(2, $"grid {directory} \"tied | interleaved-1F1B (2 per rank looped) | step\"", log, ("PIPPY_GPU_TRANSPORT", "host"));
        var lines = forced.Output.Split('\n').Where(l => l.StartsWith("transport:")).Distinct().ToArray();
        Assert.Equal(new[] { "transport: CPU (shared memory or MPI) (tensors on the CPU; PIPPY_GPU_TRANSPORT=host applies to CUDA tensors only)" }, lines);
        Assert.Equal(Regex.Matches(forced.Output, "^CELL", RegexOptions.Multiline).Count, forced.Output.Split('\n').Count(l => l.StartsWith("transport:")));
        if (System.IO.Directory.Exists(directory)) System.IO.Directory.Delete(directory, recursive: true);
    }

    /// <summary>A value of PIPPY_GPU_TRANSPORT that names no path stops Build on every rank alike (agreed, no hang), with the values it takes.</summary>
    [Fact]
    public void AnUnknownTransportStopsBuildOnEveryRankWithTheValuesItTakes()
    {
        string directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"pippy-ipc-bad-{System.Guid.NewGuid():N}");
        var run = MpiLauncher.Start(2, MpiLauncher.SampleDll("ParityApp", "tests"), $"grid {directory} \"tied | interleaved-1F1B (2 per rank looped) | step\"",
            timeoutSeconds: 120, ("PIPPY_GPU_TRANSPORT", "nccl"));
        log.WriteLine(run.Output + run.Errors);
        Assert.Contains("ERROR ArgumentException: PIPPY_GPU_TRANSPORT=nccl is not a GPU transport: use ipc, mpi or host (or unset it).", run.Output);
        Assert.Contains("FAIL grid", run.Output);
        if (System.IO.Directory.Exists(directory)) System.IO.Directory.Delete(directory, recursive: true);
    }
}
