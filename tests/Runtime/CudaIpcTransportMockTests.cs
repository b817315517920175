using System.Linq;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Runtime;

/// <summary>
/// The CUDA IPC path on real ranks over real MPI with the CUDA runtime mocked (tests/ParityApp/MockCudaIpc.cs: no GPU
/// here, so its "device" memory is shared memory on the CPU and its events are no-ops). What only a GPU shows (the
/// order of copies and kernels on the streams, the bandwidth) is bench/gpu/GpuCheck's.
/// </summary>
public class CudaIpcTransportMockTests(ITestOutputHelper log)
{
    /// <summary>PIPPY_CUDA_IPC_MOCK=1 makes Build take the mock, PIPPY_GPU_TRANSPORT=ipc makes CPU tensors take its path; shared memory off, which CPU tensors would take first.</summary>
    private static readonly (string, string?)[] ThroughMockIpc = { ("PIPPY_CUDA_IPC_MOCK", "1"), ("PIPPY_GPU_TRANSPORT", "ipc"), ("PIPPY_SHARED_MEMORY", "0") };

    [Fact]
    public void Mock_HandshakeHandleCacheAndBufferLifetimeOnTwoRanks()
    {
        var run = MpiLauncher.Parity(2, "cuda-ipc-mock", log);
        Assert.Contains("PASS cuda-ipc-mock", run.Output);
        Assert.Contains("transport: CUDA IPC (PIPPY_GPU_TRANSPORT=ipc, same host, mock CUDA runtime (shared memory on the CPU) found, MPI not CUDA-aware)", run.Output);
        Assert.Contains("[rank 1] ok: round 0 went through MPI with headers, and the receiver exported a buffer per message (12, 0 via IPC)", run.Output);
        Assert.Contains("[rank 0] ok: rounds 1-3 went through CUDA IPC (36), each handle exported once (1) and opened once (12)", run.Output);
        Assert.Contains("[rank 1] ok: round 2's buffers, held, were not written meanwhile", run.Output);
        Assert.Matches(@"\[rank 0\] ok: round 3's copies waited for rank 1 to give round 2's buffers back \(\d+ ms\)", run.Output);
        Assert.Contains("[rank 1] ok: the new shape made one new buffer and freed the old one (exported 13, freed 1; opened 1, closed 0)", run.Output);
        Assert.Contains("[rank 0] ok: the new shape made one new buffer and freed the old one (exported 1, freed 0; opened 13, closed 1)", run.Output);
        Assert.Contains("[rank 0] ok: disposed: every buffer freed and every mapping closed", run.Output);
        Assert.Contains("[rank 1] ok: disposed: every buffer freed and every mapping closed", run.Output);
        Assert.DoesNotContain("was not matched", run.Errors); // no ready note left in MPI at the end
    }

    /// <summary>Every feature, schedule and mode of the parity grid on 2 ranks, each message after the first step through the mocked IPC path.</summary>
    [Fact]
    public void Mock_EveryGridCellOnTwoRanksThroughCudaIpcEqualsThePlainModel()
    {
        string directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"pippy-ipc-grid-{System.Guid.NewGuid():N}");
        var run = MpiLauncher.Parity(2, $"grid {directory} \"\"", log, ThroughMockIpc.Append(("GRID_PRINT_PATHS", "1")).ToArray());
        if (System.IO.Directory.Exists(directory)) System.IO.Directory.Delete(directory, recursive: true);
        var summary = Regex.Match(run.Output, @"GRID \d+ ranks: (\d+) cells equal the plain model, (\d+) refused as expected, (\d+) failed");
        Assert.True(summary.Success, "the grid printed no summary");
        Assert.Equal("0", summary.Groups[3].Value);
        Assert.True(int.Parse(summary.Groups[1].Value) > 0);
        var ipc = Regex.Matches(run.Output, @"^IPC rank (\d): (\d+) messages \((\d+) bytes\) through CUDA IPC$", RegexOptions.Multiline);
        Assert.Contains(ipc, m => m.Groups[1].Value == "0");
        Assert.Contains(ipc, m => m.Groups[1].Value == "1");
        Assert.DoesNotContain("was not matched", run.Errors);
    }

    /// <summary>Batches whose shapes change: both ends learn again, and the IPC path makes new buffers for the new shapes.</summary>
    [Fact]
    public void Mock_ChangingShapesThroughCudaIpcEqualThePlainModel()
    {
        var run = MpiLauncher.Parity(2, "learned-shapes", log, ThroughMockIpc);
        Assert.Contains("PASS learned-shapes", run.Output);
        Assert.Contains("transport: CUDA IPC (", run.Output);
    }

    /// <summary>
    /// A step that fails with the IPC channels open (the reliability check's "caught-exit": rank 0's loss throws in the
    /// first step, after the receivers made their IPC buffers and sent their ready notes, before any copy; its user
    /// catches and exits): Dispose returns within seconds without the closing handshake, and rank 1's watchdog ends the rest.
    /// </summary>
    [Fact]
    public void Mock_DisposeAfterAFailedStepThroughCudaIpcReturnsWithinSeconds()
    {
        var run = MpiLauncher.Start(2, MpiLauncher.SampleDll("ParityApp", "tests"), "fail caught-exit", timeoutSeconds: 120, ThroughMockIpc);
        log.WriteLine(run.Output + run.Errors);
        Assert.Contains("transport: CUDA IPC (", run.Output);
        var match = Regex.Match(run.Output, @"\[rank 0\] caught '.*'; Dispose took ([0-9.]+) s");
        Assert.True(match.Success, "rank 0 did not print how long Dispose took");
        Assert.True(double.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) < 10, match.Value);
        Assert.Contains("[rank 0] exits", run.Output);
        Assert.Contains("[rank 1] exits", run.Output);
    }
}
