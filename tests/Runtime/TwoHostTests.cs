using System;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using System.Threading;
using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Runtime;

/// <summary>
/// Ranks on two hosts, made on this machine as network namespaces joined by a veth (<see cref="TwoHosts"/>): data
/// parallel 2 x pipeline 2 in both placements, equal to the plain model, with each message's path counted (shared
/// memory inside a host, MPI across); ranks of one machine whose host names differ (containers); and a rank killed on
/// one host. Needs root (CI runs as root); fails, saying so, without it.
/// </summary>
public class TwoHostTests(TwoHosts hosts, ITestOutputHelper log) : IClassFixture<TwoHosts>
{
    /// <summary>The tied model (and its bf16 twin) under interleaved 1F1B on 2 ranks, in each data-parallel mode: one Step, accumulated Steps, AdamW sharded.</summary>
    private const string Cells = "tied | interleaved-1F1B (2 per rank looped) | data-parallel";

    /// <summary>Runs the grid's cells on 4 ranks placed by <paramref name="placement"/>; asserts parity and returns each rank's message paths, one line per rank and cell.</summary>
    private MessagePathLines[] Grid(string placement)
    {
        string directory = Path.Combine(Path.GetTempPath(), $"pippy-two-hosts-{Guid.NewGuid():N}");
        var clock = Stopwatch.StartNew();
        var run = MpiLauncher.Wait(hosts.ParityApp(placement, 4, $"grid {directory} \"{Cells}\"", ("GRID_PRINT_PATHS", "1")), 120, $"the grid on {placement}");
        log.WriteLine($"{placement}: {clock.Elapsed.TotalSeconds:F1} s\n{run.Output}\n{run.Errors}");
        return Passed(run);
    }

    private static MessagePathLines[] Passed(MpiLauncher.Run run)
    {
        Assert.Equal(0, run.ExitCode);
        Assert.DoesNotContain("MISMATCH", run.Output);
        var summary = Regex.Match(run.Output, @"GRID 4 ranks: (\d+) cells equal the plain model, 0 refused as expected, 0 failed");
        Assert.True(summary.Success, "the grid printed no summary, or a cell failed");
        int cells = int.Parse(summary.Groups[1].Value);
        Assert.True(cells > 0, "the grid ran no cell");
        var lines = MessagePathLines.In(run.Output);
        Assert.Equal(4 * cells, lines.Length);
        return lines;
    }

    private static void AssertPlacement(MessagePathLines[] lines, params string[] hostOfRank)
    {
        foreach (var line in lines) Assert.Equal(hostOfRank[line.Rank], line.Host);
    }

    [Fact]
    public void EachPipelineInsideAHostSendsThroughSharedMemoryAndTheReplicasAcrossTheHostsMatchThePlainModel()
    {
        // Ranks 0-1 (the first pipeline) on hostA, 2-3 (its replica) on hostB: the gradients' allreduce crosses the link.
        var lines = Grid("hostA:2,hostB:2");
        AssertPlacement(lines, "hostA", "hostA", "hostB", "hostB");
        Assert.All(lines, l => Assert.True(l.ViaSharedMemory > 0 && l.ViaMpi == 0, $"rank {l.Rank} on {l.Host}: {l}"));
    }

    [Fact]
    public void EachPipelineAcrossTheHostsSendsThroughMpiAndMatchesThePlainModel()
    {
        // Ranks alternate: each pipeline has a rank on each host, and the replicas of a pipeline rank share a host.
        var lines = Grid("hostA:1,hostB:1");
        AssertPlacement(lines, "hostA", "hostB", "hostA", "hostB");
        Assert.All(lines, l => Assert.True(l.ViaSharedMemory == 0 && l.ViaMpi > 0, $"rank {l.Rank} on {l.Host}: {l}"));
    }

    [Fact]
    public void RanksOfOneMachineWithDifferentHostNamesKeepToMpiAndMatchThePlainModel()
    {
        // Containers of one machine: the same network, /dev/shm and processes, but each rank's own host name (rank 0
        // and 2 "containerA", 1 and 3 "containerB", so each pipeline spans both). Pippy takes host name and boot id
        // as the machine's identity: its pipelines keep to MPI between them, and stay correct.
        string script = Path.Combine(MpiLauncher.RepositoryRoot(), "tools", "two-hosts", "own-hostname.sh");
        string directory = Path.Combine(Path.GetTempPath(), $"pippy-containers-{Guid.NewGuid():N}");
        string rank(string name) => $"-n 1 {script} {name} dotnet {MpiLauncher.SampleDll("ParityApp", "tests")} grid {directory} \"{Cells}\"";
        var clock = Stopwatch.StartNew();
        var run = MpiLauncher.Wait(MpiLauncher.Command(MpiLauncher.Launcher(),
            $"-genv GRID_PRINT_PATHS 1 {rank("containerA")} : {rank("containerB")} : {rank("containerA")} : {rank("containerB")}"), 120, "the grid in containers");
        log.WriteLine($"{clock.Elapsed.TotalSeconds:F1} s\n{run.Output}\n{run.Errors}");
        var lines = Passed(run);
        AssertPlacement(lines, "containerA", "containerB", "containerA", "containerB");
        Assert.All(lines, l => Assert.True(l.ViaSharedMemory == 0 && l.ViaMpi > 0, $"rank {l.Rank} on {l.Host}: {l}"));
    }

    [Theory]
    [InlineData(2)] // on hostB, where mpiexec does not run: the news must cross the link
    [InlineData(0)] // on hostA, beside mpiexec
    public void ARankKilledOnOneHostEndsEveryRankOnBothHostsWithinTenSeconds(int victim)
    {
        // tests/ParityApp "fail run": a 3-stage pipeline stepping for up to a minute; ranks 0-1 on hostA, 2 on hostB.
        var lines = new ConcurrentQueue<string>();
        using var job = Process.Start(hosts.ParityApp("hostA:2,hostB:1", 3, "fail run"))!;
        job.OutputDataReceived += (_, e) => { if (e.Data is not null) lines.Enqueue(e.Data); };
        job.ErrorDataReceived += (_, e) => { if (e.Data is not null) lines.Enqueue(e.Data); };
        job.BeginOutputReadLine();
        job.BeginErrorReadLine();
        try
        {
            // Every rank's "[rank r] pid N on HOST" (the machine's process ids: the namespaces have no PID namespace), and a few steps.
            (int Pid, string Host)[] Ranks() => Enumerable.Range(0, 3)
                .Select(r => lines.Select(l => Regex.Match(l, $@"^\[rank {r}\] pid (\d+) on (\S+)")).FirstOrDefault(m => m.Success))
                .Select(m => m is null ? (0, "") : (int.Parse(m.Groups[1].Value), m.Groups[2].Value)).ToArray();
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
            while ((Ranks().Any(r => r.Pid == 0) || !lines.Contains("step 3")) && DateTime.UtcNow < deadline) Thread.Sleep(100);
            var ranks = Ranks();
            Assert.True(ranks.All(r => r.Pid != 0) && lines.Contains("step 3"), "the job did not start stepping within 90 s:\n" + string.Join("\n", lines));
            Assert.Equal(new[] { "hostA", "hostA", "hostB" }, ranks.Select(r => r.Host));

            using (var kill = Process.Start("kill", $"-9 {ranks[victim].Pid}")) kill.WaitForExit();
            var clock = Stopwatch.StartNew();
            bool ended = job.WaitForExit(TimeSpan.FromSeconds(10));
            if (ended) job.WaitForExit(); // the output's last lines
            log.WriteLine($"the launcher ended {clock.Elapsed.TotalSeconds:F1} s after the kill\n" + string.Join("\n", lines.Where(l => !l.StartsWith("step "))));
            Assert.True(ended, $"mpiexec was still running 10 s after rank {victim} on {ranks[victim].Host} was killed");
            Assert.NotEqual(0, job.ExitCode);
            // Hydra's report names the process and its host.
            Assert.Contains(lines, l => l.Contains("BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES", StringComparison.Ordinal));
            Assert.Contains(lines, l => l.Contains($"PID {ranks[victim].Pid} RUNNING AT {ranks[victim].Host}", StringComparison.Ordinal));
            // mpiexec may return before every rank has ended: each must be gone within the same 10 s.
            var others = ranks.Where((_, r) => r != victim).ToArray();
            while (others.Any(r => Alive(r.Pid)) && clock.Elapsed < TimeSpan.FromSeconds(10)) Thread.Sleep(50);
            log.WriteLine($"the other ranks were gone {clock.Elapsed.TotalSeconds:F1} s after the kill");
            foreach (var (pid, host) in others)
                Assert.False(Alive(pid), $"rank process {pid} on {host} was still alive {clock.Elapsed.TotalSeconds:F1} s after rank {victim} was killed");
        }
        finally
        {
            if (!job.HasExited) job.Kill(entireProcessTree: true);
        }
    }

    /// <summary>Whether the process runs (an ended one not yet reaped, a zombie, does not).</summary>
    private static bool Alive(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..][0] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }
}
