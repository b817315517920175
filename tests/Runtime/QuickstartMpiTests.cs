using System.Linq;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Runtime;

/// <summary>
/// The quickstart on three real MPI ranks: each rank compares what the pipeline gave it (output on the last rank,
/// loss everywhere, its stage's gradients) with the same model run in one process, and prints one line per check.
/// </summary>
public class QuickstartMpiTests(ITestOutputHelper log)
{
    private MpiLauncher.Run RunQuickstart(string arguments)
    {
        var run = MpiLauncher.Start(3, MpiLauncher.SampleDll("Quickstart"), arguments);
        log.WriteLine(run.Output);
        log.WriteLine(run.Errors);
        return run;
    }

    private static void AssertEverythingMatches(MpiLauncher.Run run)
    {
        Assert.Equal(0, run.ExitCode);
        Assert.DoesNotContain("MISMATCH", run.Output);
        Assert.Contains("PASS: outputs, loss and every gradient match", run.Output);
        var checks = run.Output.Split('\n').Where(l => l.StartsWith("[rank ")).ToArray();
        // The output on the last rank, the loss on each of the 3 ranks, weight and bias gradients of each stage.
        Assert.Single(checks, l => l.Contains("stage 2] forward output") && l.EndsWith(" ok"));
        Assert.Equal(3, checks.Count(l => l.Contains("] loss:") && l.EndsWith(" ok")));
        for (int stage = 0; stage < 3; stage++)
        {
            Assert.Single(checks, l => l.StartsWith($"[rank {stage} stage {stage}] grad layer{stage}.linear.weight") && l.EndsWith(" ok"));
            Assert.Single(checks, l => l.StartsWith($"[rank {stage} stage {stage}] grad layer{stage}.linear.bias") && l.EndsWith(" ok"));
        }
        // Parity is not vacuous: the compared tensors are not all zero.
        Assert.All(checks, l => Assert.Matches(new Regex(@"max \|ref\| [1-9]"), l));
    }

    [Fact]
    public void SixtyFourMicrobatchesMatchTheSingleProcessModel()
    {
        var run = RunQuickstart("--microbatches 64 --batch 256");
        AssertEverythingMatches(run);
        Assert.Contains("[pippy] MyNetwork: 3 stages on 3 ranks, GPipe, 64 microbatches", run.Output);
    }

    [Fact]
    public void UnevenMicrobatchesMatchTheSingleProcessModel()
    {
        // 50 rows in 8 microbatches: 7, 7, 6, 6, 6, 6, 6, 6.
        AssertEverythingMatches(RunQuickstart("--microbatches 8 --batch 50"));
    }

    [Fact]
    public void FailureOnOneRankEndsTheWholeJobInsteadOfHanging()
    {
        // Rank 1 throws before the step; ranks 0 and 2 are then blocked waiting for its messages. Without the abort
        // on unhandled exceptions they would wait forever and the launcher's timeout would fail this test.
        var run = MpiLauncher.Start(3, MpiLauncher.SampleDll("Quickstart"), "--microbatches 4 --batch 16 --fail-on-rank 1", timeoutSeconds: 120);
        log.WriteLine(run.Output + run.Errors);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("[pippy rank 1/3] fatal, ending the whole job", run.Errors);
        Assert.Contains("failure injected on rank 1", run.Errors);
        Assert.DoesNotContain("PASS", run.Output);
    }

    /// <summary>
    /// A mistake in how the job was started is said once, by the lowest rank (every rank saw it), as the message alone:
    /// no stack trace, no "Unhandled exception", no MPI_Abort lines; and the job exits non-zero. PIPPY_DEBUG=1 adds the trace.
    /// </summary>
    [Fact]
    public void WrongRankCountEndsTheJobWithTheFixSaidOnce()
    {
        const string Fix = "MyNetwork has 3 stages and runs 1 stage(s) per rank (GPipe), so a pipeline takes 3 rank(s), but this job has 2 rank(s): start it with mpiexec -n 3";
        var run = MpiLauncher.Start(2, MpiLauncher.SampleDll("Quickstart"), "", timeoutSeconds: 120);
        log.WriteLine(run.Output + run.Errors);
        Assert.NotEqual(0, run.ExitCode);
        string all = run.Output + run.Errors;
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(all, System.Text.RegularExpressions.Regex.Escape(Fix)));
        Assert.Contains("[pippy] error: " + Fix, run.Errors);
        Assert.DoesNotContain("   at ", all);
        Assert.DoesNotContain("Unhandled exception", all);
        Assert.DoesNotContain("MPI_Abort", all);

        var debug = MpiLauncher.Start(2, MpiLauncher.SampleDll("Quickstart"), "", timeoutSeconds: 120, environment: ("PIPPY_DEBUG", "1"));
        Assert.NotEqual(0, debug.ExitCode);
        Assert.Contains("[pippy] error (rank 0): System.InvalidOperationException: " + Fix, debug.Errors);
        Assert.Contains("   at Pippy.Runtime.Runner.SchedulePlan.Resolve", debug.Errors);
    }
}
