using System.Linq;
using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Runtime;

/// <summary>
/// Messages whose shapes are learned on the first step (tests/ParityApp/LearnedShapes.cs), on 2 ranks: later steps
/// send memory only into receives posted in advance, reuse their buffers, relearn when the batch's shape changes,
/// and still match the plain model step by step.
/// </summary>
public class LearnedShapesTests(ITestOutputHelper log)
{
    [Fact]
    public void AfterTheFirstStepsMessagesCarryNoHeaderAndNoBufferIsCreated()
    {
        // Over MPI alone: receive buffers come from the pool.
        var run = MpiLauncher.Parity(2, "learned-shapes", log, ("PIPPY_SHARED_MEMORY", "0"));
        Assert.Contains("PASS learned-shapes", run.Output); // every step's loss and gradients against the plain model
        foreach (int rank in new[] { 0, 1 })
        {
            string Step(int step) => StepLine(run.Output, rank, step);
            Assert.Contains("messages with header 4, memory only 0", Step(0));            // learning
            Assert.Contains("messages with header 0, memory only 4", Step(1));            // posted ahead from now on
            Assert.Contains("buffers created 0, shared slots created 0, messages with header 0, memory only 4", Step(2)); // steady state: nothing new
            Assert.Contains("(10 rows): buffers created 1, shared slots created 0, messages with header 4", Step(3)); // a new batch shape is learned again
            Assert.Contains("messages with header 0, memory only 4", Step(4));
        }
    }

    [Fact]
    public void BetweenRanksOfOneMachineMessagesGoThroughSharedSlotsReusedFromTheSecondStep()
    {
        // The default on one machine: the sender copies into a shared slot, the receiver reads it in place (no
        // receive buffers); a slot is reused once the receiver frees it, so a rank creates at most as many slots of a
        // size as it has messages of that size in flight (4 per step here), however many steps it runs.
        var run = MpiLauncher.Parity(2, "learned-shapes", log);
        Assert.Contains("PASS learned-shapes", run.Output);
        foreach (int rank in new[] { 0, 1 })
        {
            string Step(int step) => StepLine(run.Output, rank, step);
            Assert.Contains("messages with header 4, memory only 0", Step(0));
            foreach (int step in new[] { 1, 2, 4 }) Assert.Contains("buffers created 0, shared slots created", Step(step));
            Assert.InRange(Slots(Step(0)), 1, 4);                                         // each rank sends: activations or gradients
            Assert.InRange(Slots(Step(0)) + Slots(Step(1)) + Slots(Step(2)), 1, 4);       // 14 rows: 12 messages, at most 4 slots
            Assert.Contains("(10 rows): buffers created 0", Step(3));                     // a new size: new slots, still no receive buffer
            Assert.InRange(Slots(Step(3)) + Slots(Step(4)), 1, 4);
        }
    }

    private static string StepLine(string output, int rank, int step) => output.Split('\n').Single(l => l.Contains($"[rank {rank}] step {step} ("));

    private static int Slots(string line) => int.Parse(System.Text.RegularExpressions.Regex.Match(line, @"shared slots created (\d+)").Groups[1].Value);

    [Fact]
    public void HostStagingOfTheGpuPath_MockedOnCpu_GivesTheSameSteps()
    {
        // Without a GPU, CPU tensors are forced through the host staging buffers that CUDA tensors use when MPI is not
        // CUDA-aware: copied into a pooled buffer before each send and out of one after each receive.
        var run = MpiLauncher.Parity(2, "learned-shapes", log, ("PIPPY_STAGE_THROUGH_HOST", "1"));
        Assert.Contains("PASS learned-shapes", run.Output);
        var last = run.Output.Split('\n').Single(l => l.Contains("[rank 1] step 4 ("));
        int staging = int.Parse(System.Text.RegularExpressions.Regex.Match(last, @"host staging buffers (\d+)").Groups[1].Value);
        Assert.InRange(staging, 1, 12); // pooled: a few per shape, not one per message (40 messages over 5 steps)
        Assert.Contains("host staging buffers 0", MpiLauncher.Parity(2, "learned-shapes", log).Output);
    }

    [Fact]
    public void AValueWhoseShapeFollowsTheDataIsAnErrorThatNamesItAndTheFix()
    {
        var run = MpiLauncher.Start(2, MpiLauncher.SampleDll("ParityApp", "tests"), "shape-by-data");
        log.WriteLine(run.Output + run.Errors);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("The value 'kept' from stage 0 to stage 1 (microbatch 0) changed between steps although the batch's shapes did not: " +
                        "it was Float32 [3, 4] requiring grad in earlier steps and is Float32 [2, 4] requiring grad now", run.Output + run.Errors);
        Assert.Contains("set PipelineOptions.LearnShapes = false", run.Output + run.Errors);

        var headers = MpiLauncher.Parity(2, "shape-by-data headers", log);
        Assert.Contains("kept 2 rows", headers.Output);
        Assert.Contains("PASS shape-by-data", headers.Output);
    }
}
