using System;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Linq;
using System.Text.RegularExpressions;
using System.Threading;
using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Runtime;

/// <summary>
/// Failures end the whole job with a message, never a hang (tests/ParityApp/Reliability.cs, a 3-stage model on 3
/// ranks): a rank killed with SIGKILL, an exception in a stage's forward, in the loss or in a backward, and a rank that
/// never takes part or never joins a collective (the watchdog).
/// </summary>
public class ReliabilityTests(ITestOutputHelper log)
{
    private MpiLauncher.Run Fail(string mode, int ranks = 3)
    {
        var run = MpiLauncher.Start(ranks, MpiLauncher.SampleDll("ParityApp", "tests"), $"fail {mode}", timeoutSeconds: 120);
        log.WriteLine(run.Output + run.Errors);
        Assert.NotEqual(0, run.ExitCode);
        return run;
    }

    private static int FatalMessages(MpiLauncher.Run run) => Regex.Matches(run.Output + run.Errors, "fatal, ending the whole job").Count;

    [Fact]
    public void AnExceptionInAStagesForwardNamesRankStageActionAndMicrobatch()
    {
        var run = Fail("forward");
        Assert.Contains("[pippy rank 1/3] fatal, ending the whole job: Pipeline rank 1, stage 1, action 1F1 (the forward of microbatch 1, " +
                        "given 'x' float32[2, 6] on cpu from stage 0 (pipeline rank 0)) failed: InvalidOperationException: the bomb went off on forward call 2.", run.Errors);
        Assert.Equal(1, FatalMessages(run)); // one message: the other ranks are ended by the abort, not by errors of their own
    }

    [Fact]
    public void AnExceptionInTheLossNamesTheLossAndItsMicrobatch()
    {
        var run = Fail("loss");
        Assert.Contains("Pipeline rank 2, stage 2, action 2F1 (the loss of microbatch 1) failed: ArithmeticException: the loss failed on its second microbatch", run.Errors);
        Assert.Equal(1, FatalMessages(run));
    }

    [Fact]
    public void AnExceptionInABackwardNamesTheBackward()
    {
        var run = Fail("backward");
        Assert.Matches(@"Pipeline rank 2, stage 2, action 2B\d \(the backward of microbatch \d\) failed: .*does not require grad", run.Errors);
    }

    /// <summary>The seconds that "fail caught" printed for Dispose (from the loss's throw to the user's catch).</summary>
    private static double DisposeSeconds(MpiLauncher.Run run)
    {
        var match = Regex.Match(run.Output, @"\[rank 0\] caught '.*'; Dispose took ([0-9.]+) s");
        Assert.True(match.Success, "rank 0 did not print how long Dispose took");
        return double.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public void DisposeAfterACaughtFailedStepReturnsWithinSecondsAndTheRethrowEndsTheJob()
    {
        // 2 ranks, ReceiveTimeout 60 s: rank 0's loss throws while rank 1 still holds rank 0's shared-memory slot of
        // that microbatch and waits for rank 0. The user's code catches the exception around `using var pipe`, prints
        // how long Dispose took, and rethrows: the unhandled exception aborts the job at once. (Before Dispose learned
        // of failed steps, it waited for that slot for the whole ReceiveTimeout: 60.07 s.)
        var clock = Stopwatch.StartNew();
        var run = Fail("caught", ranks: 2);
        double seconds = DisposeSeconds(run);
        log.WriteLine($"Dispose took {seconds:F2} s; the job {clock.Elapsed.TotalSeconds:F1} s");
        Assert.True(seconds < 10, $"Dispose took {seconds:F2} s");
        Assert.Contains("[pippy rank 0/2] fatal, ending the whole job: Pipeline rank 0, stage 3, action 3F1 (the loss of microbatch 1) failed: " +
                        "ArithmeticException: the loss failed on its second microbatch", run.Errors);
        Assert.Equal(1, FatalMessages(run));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(40), $"the job took {clock.Elapsed.TotalSeconds:F0} s to end");
    }

    [Fact]
    public void AfterACaughtFailedStepTheRankExitsAndTheWatchdogEndsTheRankWaitingForIt()
    {
        // The same failure with ReceiveTimeout 20 s, but the user's code returns after catching: Dispose is as quick,
        // rank 0 goes on to exit, and rank 1, which waits for rank 0's gradient, is ended by its watchdog (which
        // this program catches too), so the job ends by itself within the timeout and a few seconds.
        var clock = Stopwatch.StartNew();
        var run = Fail("caught-exit", ranks: 2);
        double seconds = DisposeSeconds(run);
        log.WriteLine($"Dispose took {seconds:F2} s; the job {clock.Elapsed.TotalSeconds:F1} s");
        Assert.True(seconds < 10, $"Dispose took {seconds:F2} s");
        Assert.Contains("[rank 0] exits", run.Output);
        Assert.Contains("Rank 1 waited 20 s for the gradient of 'x' from stage 3 (pipeline rank 0) for stage 2, microbatch 1", run.Output);
        Assert.Contains("[rank 1] exits", run.Output);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"the job took {clock.Elapsed.TotalSeconds:F0} s to end");
    }

    [Fact]
    public void TheWatchdogEndsAJobWhoseRankNeverTakesPart()
    {
        var clock = Stopwatch.StartNew();
        var run = Fail("stuck"); // rank 1 sleeps 60 s; the watchdog of ranks 0 and 2 fires after 3 s
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(40), $"the job took {clock.Elapsed.TotalSeconds:F0} s to end");
        Assert.Contains("waited 3 s for the value 'x' from stage 1 (pipeline rank 1) for stage 2, microbatch 0", run.Errors);
        Assert.Contains("PipelineOptions.ReceiveTimeout", run.Errors);
    }

    [Fact]
    public void TheWatchdogAlsoEndsACollectiveThatARankNeverJoins()
    {
        var clock = Stopwatch.StartNew();
        var run = Fail("collective"); // after a step, rank 1 sleeps instead of calling ClipGradNorm
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(40), $"the job took {clock.Elapsed.TotalSeconds:F0} s to end");
        Assert.Contains("waited 3 s for the other ranks in the gradient-norm allreduce of ClipGradNorm", run.Errors);
    }

    [Fact]
    public void TheWatchdogEndsALossBroadcastThatARankNeverJoins()
    {
        var clock = Stopwatch.StartNew();
        var run = Fail("loss-broadcast", ranks: 2); // rank 0 holds the last stage and stalls 60 s in stage 0's last backward
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(40), $"the job took {clock.Elapsed.TotalSeconds:F0} s to end");
        Assert.Contains("Rank 1 waited 3 s for the other ranks in the step's loss to every rank of the pipeline", run.Errors);
        Assert.Contains("PipelineOptions.ReceiveTimeout", run.Errors);
        Assert.DoesNotContain("[rank 1] stepped", run.Output);
    }

    [Fact]
    public void TheWatchdogEndsADataParallelAllreduceThatARankNeverJoins()
    {
        var clock = Stopwatch.StartNew();
        var run = Fail("data-parallel", ranks: 4); // DataParallel = 2: rank 0 stalls 60 s in its last backward; rank 2, its replica, waits
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(40), $"the job took {clock.Elapsed.TotalSeconds:F0} s to end");
        Assert.Contains("Rank 2 waited 3 s for the other ranks in the data-parallel allreduce of the gradients", run.Errors);
        Assert.Contains("PipelineOptions.ReceiveTimeout", run.Errors);
        Assert.DoesNotContain("[rank 2] stepped", run.Output);
    }

    [Fact]
    public void TheWatchdogEndsTheGatherOfWriteTraceThatARankNeverJoins()
    {
        var clock = Stopwatch.StartNew();
        var run = Fail("trace"); // after a step, rank 1 sleeps instead of calling WriteTrace
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(40), $"the job took {clock.Elapsed.TotalSeconds:F0} s to end");
        Assert.Contains("Rank 0 waited 3 s for the other ranks in the gather of the trace sizes of WriteTrace", run.Errors);
    }

    [Theory]
    [InlineData(0)] // the first rank
    [InlineData(1)] // a middle one
    [InlineData(2)] // the last
    public void ARankKilledMidStepEndsEveryRankWithinTenSeconds(int victim)
    {
        var start = new ProcessStartInfo(MpiLauncher.Launcher(), $"-n 3 dotnet {MpiLauncher.SampleDll("ParityApp", "tests")} fail run")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        var lines = new ConcurrentQueue<string>();
        using var job = Process.Start(start)!;
        job.OutputDataReceived += (_, e) => { if (e.Data is not null) lines.Enqueue(e.Data); };
        job.ErrorDataReceived += (_, e) => { if (e.Data is not null) lines.Enqueue(e.Data); };
        job.BeginOutputReadLine();
        job.BeginErrorReadLine();
        try
        {
            // Wait until every rank has said its process id and the pipeline has run a few steps.
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
            int[] Pids() => Enumerable.Range(0, 3).Select(r => lines.Select(l => Regex.Match(l, $@"^\[rank {r}\] pid (\d+)")).FirstOrDefault(m => m.Success)?.Groups[1].Value)
                .Select(p => p is null ? 0 : int.Parse(p)).ToArray();
            while ((Pids().Contains(0) || !lines.Any(l => l == "step 3")) && DateTime.UtcNow < deadline) Thread.Sleep(100);
            var pids = Pids();
            Assert.DoesNotContain(0, pids);

            using (var kill = Process.Start("kill", $"-9 {pids[victim]}")) kill.WaitForExit();
            var clock = Stopwatch.StartNew();
            bool ended = job.WaitForExit(TimeSpan.FromSeconds(10));
            log.WriteLine(string.Join("\n", lines.Where(l => !l.StartsWith("step "))));
            Assert.True(ended, "the launcher was still running 10 s after a rank was killed");
            Assert.NotEqual(0, job.ExitCode);
            foreach (int pid in pids.Where((_, r) => r != victim))
                Assert.True(!Alive(pid), $"rank process {pid} was still alive {clock.Elapsed.TotalSeconds:F1} s after rank {victim} was killed");
        }
        finally
        {
            if (!job.HasExited) job.Kill(entireProcessTree: true);
        }
    }

    private static bool Alive(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    [Fact]
    public void ACheckpointOfAnotherConfigurationIsRefusedAndChangesNothing()
    {
        string directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "pippy-other-" + Guid.NewGuid().ToString("N"));
        try
        {
            MpiLauncher.Parity(4, $"resume 0 1 - {directory}", log);
            var output = MpiLauncher.Parity(4, $"load-other {directory}", log).Output; // the same GPT, 24 wide instead of 16
            Assert.Contains("PASS load-other", output);
            Assert.Contains("[rank 0] refused: rank0.step1.pippy: 'tokens.weight' of stage 0 was saved as Float32 [32, 16] but is Float32 [32, 24] here", output);
            Assert.Equal(4, Regex.Matches(output, @"Nothing was loaded\. unchanged: True").Count);
        }
        finally
        {
            if (System.IO.Directory.Exists(directory)) System.IO.Directory.Delete(directory, recursive: true);
        }
    }

    [Theory]
    [InlineData("parameters")] // one byte flipped in the parameters of rank 1's shard
    [InlineData("optimizer")]  // one byte flipped in the optimizer state of rank 1's shard
    [InlineData("index")]      // one byte flipped in the index (the step: still valid JSON)
    [InlineData("cut")]        // rank 1's shard cut to half its length
    public void ADamagedCheckpointIsRefusedOnEveryRankNamingTheFileAndChangesNothing(string damage)
    {
        string directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "pippy-damaged-" + Guid.NewGuid().ToString("N"));
        try
        {
            MpiLauncher.Parity(4, $"resume 0 1 - {directory}", log); // AdamW: the shards hold optimizer state
            // Every rank trains a step, tries to load, must refuse, and compares its parameters and optimizer state with
            // what they were before (ok or MISMATCH); then trains a step more, and MergeCheckpoint must refuse too.
            var output = MpiLauncher.Parity(4, $"load-damaged {directory} {damage}", log).Output;
            Assert.Contains("PASS load-damaged", output);
            string shard = System.IO.Path.Combine(directory, "rank1.step1.pippy"), index = System.IO.Path.Combine(directory, "checkpoint.json");
            string refusal = damage switch
            {
                "index" => $"Checkpoint index {index} (read by rank 0) is damaged: its checksum is xxh3:",
                "cut" => $"Checkpoint shard {shard} (rank 1) is damaged: it has ",
                _ => $"Checkpoint shard {shard} (rank 1) is damaged: its checksum is xxh3:",
            };
            foreach (int rank in Enumerable.Range(0, 4))
            {
                Assert.Contains($"[rank {rank}] refused: {refusal}", output);
                Assert.Contains($"[rank {rank}] parameters unchanged: ok", output);
                Assert.Contains($"[rank {rank}] optimizer state unchanged: ok", output);
                Assert.Contains($"[rank {rank}] trained a step after the refusal", output);
            }
            if (damage == "cut") Assert.Equal(4, Regex.Matches(output, @"\(rank 1\) is damaged: it has [\d,]+ bytes but the index records [\d,]+; it was changed or cut after it was saved\. Nothing was loaded").Count);
            Assert.Equal(4, Regex.Matches(output, Regex.Escape("Nothing was loaded: restore the file or load an earlier checkpoint.")).Count);
            Assert.Contains(damage == "index" ? $"[rank 0] merge refused: Checkpoint index {index} is damaged" : $"[rank 0] merge refused: Checkpoint shard {shard} (rank 1) is damaged", output);
            Assert.Contains("Nothing was merged", output);
            Assert.Contains("[rank 0] no merged file: ok", output);
        }
        finally
        {
            if (System.IO.Directory.Exists(directory)) System.IO.Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void ACheckpointWithoutChecksumsIsRefusedUntilAddChecksumsAddsThem()
    {
        string directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "pippy-no-checksums-" + Guid.NewGuid().ToString("N"));
        try
        {
            MpiLauncher.Parity(4, $"resume 0 1 - {directory}", log);
            Assert.Matches("\"Checksum\": \"xxh3:[0-9a-f]{16}\"\\s*}\\s*$", System.IO.File.ReadAllText(System.IO.Path.Combine(directory, "checkpoint.json")));
            // The index's checksums taken out, as in a checkpoint saved before Pippy wrote them.
            var output = MpiLauncher.Parity(4, $"load-damaged {directory} no-checksums", log).Output;
            Assert.Contains("PASS load-damaged", output);
            foreach (int rank in Enumerable.Range(0, 4))
            {
                Assert.Contains($"[rank {rank}] refused: Checkpoint index {System.IO.Path.Combine(directory, "checkpoint.json")} (read by rank 0) records no checksums: " +
                                "the checkpoint was saved before Pippy wrote them, or its index was edited. Nothing was loaded. If you trust its files as they are now, " +
                                $"add checksums once with PipelineCheckpoint.AddChecksums(\"{directory}\")", output);
                Assert.Contains($"[rank {rank}] parameters unchanged: ok", output);
                Assert.Contains($"[rank {rank}] optimizer state unchanged: ok", output);
                Assert.Contains($"[rank {rank}] loaded step 1 after AddChecksums", output);
            }
        }
        finally
        {
            if (System.IO.Directory.Exists(directory)) System.IO.Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void ACheckpointOfAnotherStagePlacementIsRefusedAndChangesNothing()
    {
        // The same 4-stage GPT on 2 ranks: saved interleaved (stages 0 and 2 on rank 0), loaded as a V (0 and 3 on rank 0).
        string directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "pippy-placement-" + Guid.NewGuid().ToString("N"));
        try
        {
            MpiLauncher.Parity(2, $"checkpoint-layout save interleaved {directory}", log);
            var output = MpiLauncher.Parity(2, $"checkpoint-layout load v {directory}", log).Output;
            Assert.Contains("PASS checkpoint-layout", output);
            // The ranks agree before any loads: every rank refuses with the lowest failing rank's message.
            Assert.Contains("[rank 0] refused: rank0.step0.pippy holds stage 2, which this rank does not run.", output);
            Assert.Contains("[rank 1] refused: rank0.step0.pippy holds stage 2, which this rank does not run.", output);
            Assert.Equal(2, Regex.Matches(output, @"unchanged: True").Count);
        }
        finally
        {
            if (System.IO.Directory.Exists(directory)) System.IO.Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void ACheckpointOfAnotherRankCountIsRefusedAndChangesNothing()
    {
        // Saved with a stage per rank on 4 ranks, loaded with 2 stages per rank on 2.
        string directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "pippy-rank-count-" + Guid.NewGuid().ToString("N"));
        try
        {
            MpiLauncher.Parity(4, $"checkpoint-layout save 1f1b {directory}", log);
            var output = MpiLauncher.Parity(2, $"checkpoint-layout load interleaved {directory}", log).Output;
            Assert.Contains("PASS checkpoint-layout", output);
            Assert.Contains($"[rank 0] refused: The checkpoint in {directory} is of TinyGpt with 4 stages on 4 ranks, but this pipeline is TinyGpt with 4 stages on 2 ranks", output);
            Assert.Equal(2, Regex.Matches(output, @"unchanged: True").Count);
        }
        finally
        {
            if (System.IO.Directory.Exists(directory)) System.IO.Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void AJobKilledWhileSavingLeavesThePreviousCheckpointWholeAndLoadable()
    {
        string directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "pippy-killed-save-" + Guid.NewGuid().ToString("N"));
        try
        {
            MpiLauncher.Parity(4, $"resume 0 1 - {directory}", log); // the checkpoint of step 1
            var start = new ProcessStartInfo(MpiLauncher.Launcher(), $"-n 4 dotnet {MpiLauncher.SampleDll("ParityApp", "tests")} resume 1 1 {directory} {directory}")
            {
                RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            };
            start.Environment["PIPPY_TEST_PAUSE_BEFORE_RENAME"] = "1"; // each rank holds its written step-2 shard under its temporary name
            var lines = new ConcurrentQueue<string>();
            using (var job = Process.Start(start)!)
            {
                job.OutputDataReceived += (_, e) => { if (e.Data is not null) lines.Enqueue(e.Data); };
                job.BeginOutputReadLine();
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
                while (lines.Count(l => l.Contains("paused before renaming rank")) < 4 && DateTime.UtcNow < deadline) Thread.Sleep(100);
                job.Kill(entireProcessTree: true); // SIGKILL, mid-save
                job.WaitForExit();
            }
            log.WriteLine(string.Join("\n", lines));
            Assert.Equal(4, lines.Count(l => l.Contains("paused before renaming rank")));
            var files = System.IO.Directory.GetFiles(directory).Select(System.IO.Path.GetFileName).ToArray();
            Assert.All(Enumerable.Range(0, 4), r => Assert.Contains($"rank{r}.step1.pippy", files));
            Assert.DoesNotContain(files, f => f!.EndsWith(".step2.pippy", StringComparison.Ordinal)); // no partial file under a final name
            Assert.Contains("\"Step\": 1", System.IO.File.ReadAllText(System.IO.Path.Combine(directory, "checkpoint.json")));
            // And a new job resumes from it.
            var resumed = MpiLauncher.Start(4, MpiLauncher.SampleDll("ParityApp", "tests"), $"resume 1 1 {directory} -");
            log.WriteLine(resumed.Output + resumed.Errors);
            Assert.Equal(0, resumed.ExitCode);
            Assert.Contains("step 1 loss bits", resumed.Output);
        }
        finally
        {
            if (System.IO.Directory.Exists(directory)) System.IO.Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void ANonContiguousBoundaryValueIsSentAsAContiguousCopy()
    {
        // Stage 0 hands over a transposed view; the transport copies it to contiguous memory instead of failing.
        var output = MpiLauncher.Parity(2, "transposed", log).Output;
        Assert.Contains("PASS transposed", output);
    }

    [Fact]
    public void ABoundaryTheStagesDisagreeOnFailsTheFirstForwardNamingTheStage()
    {
        // Stage 0 makes 5 features, stage 1's layer takes 6: the first forward of stage 1 says so, before any update.
        var run = Fail("mismatch", ranks: 2);
        Assert.Contains("Pipeline rank 1, stage 1, action 1F0 (the forward of microbatch 0, given 'hidden' float32[4, 5] on cpu from stage 0 (pipeline rank 0)) failed: " +
                        "ExternalException: mat1 and mat2 shapes cannot be multiplied (4x5 and 6x3). " +
                        "If an input is not what this stage's code takes, check the batch (shape, dtype, which dimension holds the batch) and that every rank built the same model.", run.Errors);
    }

    [Fact]
    public void RanksThatBuiltDifferentModelsAreRefusedBeforeTheFirstStep()
    {
        // Rank 1 passes another width to the model's constructor: Build names the first tensor that differs, on every rank.
        var run = Fail("different", ranks: 2);
        Assert.Contains("Rank 1 built a different Configured than rank 0 (rank 1 has stage 0 parameter first.weight: float32[4, 6], " +
                        "rank 0 has stage 0 parameter first.weight: float32[5, 6]); nothing was run. Every rank must build the same model", run.Errors);
        Assert.DoesNotContain("] built", run.Output);
        Assert.DoesNotContain("stepped", run.Output);
        // Every rank refused; the first that differs said it, once, without a stack trace.
        Assert.Single(Regex.Matches(run.Errors, "built a different Configured"));
        Assert.DoesNotContain("   at ", run.Errors);
    }
}
