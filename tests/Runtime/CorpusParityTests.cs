using System.Linq;
using Pippy.Schedules;
using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Runtime;

/// <summary>
/// The corpus (docs/annotations.md, "Corpus"): models written as TorchSharp users write them (tests/ParityApp/Models/
/// Corpus*.cs, and the VAE, Transformer encoder and EmbeddingBag classifier of the DSL tests), each annotated with
/// [Pipeline], partial and a few [SplitEnd] fields only. On real MPI ranks (one per stage), under each schedule chosen
/// at run time with PipelineOptions.Schedule, every rank checks the outputs, the loss and every gradient of its stage
/// against the same model in one process with the same seed.
/// </summary>
/// <remarks>
/// The ResNet has 16 channels, not 8: libtorch 2.10's oneDNN convolution backward returns NaN input gradients now and
/// then for 8 output channels, in the plain model too (ParityApp scenario libtorch-conv-nan; docs/troubleshooting.md).
/// </remarks>
public class CorpusParityTests(ITestOutputHelper log)
{
    [Theory]
    [InlineData("resnet", 3, ScheduleKind.GPipe)]
    [InlineData("resnet", 3, ScheduleKind.OneFOneB)]
    [InlineData("resnet", 3, ScheduleKind.InterleavedZeroBubble)]
    [InlineData("lstm", 3, ScheduleKind.GPipe)]
    [InlineData("lstm", 3, ScheduleKind.OneFOneB)]
    [InlineData("lstm", 3, ScheduleKind.InterleavedZeroBubble)]
    [InlineData("bert", 3, ScheduleKind.GPipe)]
    [InlineData("bert", 3, ScheduleKind.OneFOneB)]
    [InlineData("bert", 3, ScheduleKind.InterleavedZeroBubble)]
    [InlineData("mobilenet", 3, ScheduleKind.GPipe)]
    [InlineData("mobilenet", 3, ScheduleKind.OneFOneB)]
    [InlineData("mobilenet", 3, ScheduleKind.InterleavedZeroBubble)]
    [InlineData("vae", 2, ScheduleKind.GPipe)]
    [InlineData("vae", 2, ScheduleKind.OneFOneB)]
    [InlineData("vae", 2, ScheduleKind.InterleavedZeroBubble)]
    [InlineData("using-encoder", 3, ScheduleKind.GPipe)]
    [InlineData("using-encoder", 3, ScheduleKind.OneFOneB)]
    [InlineData("using-encoder", 3, ScheduleKind.InterleavedZeroBubble)]
    [InlineData("embedding-bag", 2, ScheduleKind.GPipe)]
    [InlineData("embedding-bag", 2, ScheduleKind.OneFOneB)]
    [InlineData("embedding-bag", 2, ScheduleKind.InterleavedZeroBubble)]
    public void ModelMatchesThePlainModelUnderTheSchedule(string model, int stages, ScheduleKind schedule)
    {
        string scenario = $"corpus-{model}";
        var run = MpiLauncher.Parity(stages, $"{scenario} {schedule}", log);
        Assert.Contains($"PASS {scenario}", run.Output);
        Assert.Contains($": {stages} stages on {stages} ranks, {schedule}, ", run.Output);
        var lines = run.Output.Split('\n');
        Assert.Equal(stages, lines.Count(l => l.Contains("] loss:") && l.EndsWith(" ok")));
        Assert.Contains(lines, l => l.StartsWith($"[rank {stages - 1} stage {stages - 1}] output 0:") && l.EndsWith(" ok"));
        for (int rank = 0; rank < stages; rank++)
        {
            var checkedLine = lines.Single(l => l.StartsWith($"[rank {rank} stage {rank}] checked "));
            Assert.True(int.Parse(checkedLine.Split(' ')[5]) > 0, checkedLine);
        }
    }

    /// <summary>
    /// Evaluate on the corpus LSTM (dropout 0.2) left in training mode: the loss and outputs of the plain model in eval
    /// mode, the same loss twice (dropout off), every stage back in training mode and no gradient made.
    /// </summary>
    [Theory]
    [InlineData(ScheduleKind.GPipe)]
    [InlineData(ScheduleKind.OneFOneB)]
    [InlineData(ScheduleKind.InterleavedZeroBubble)]
    public void EvaluateRunsEveryStageInEvalModeAndPutsTrainingModeBack(ScheduleKind schedule)
    {
        var run = MpiLauncher.Parity(3, $"evaluate-dropout {schedule}", log);
        Assert.Contains($"PASS evaluate-dropout {schedule}: loss ", run.Output);
        Assert.DoesNotContain("MISMATCH", run.Output);
    }

    /// <summary>One rank's stages left in eval mode while the others train: Step refuses on every rank, saying what to do.</summary>
    [Fact]
    public void RanksThatDisagreeOnTrainingModeAreRefusedAtStep()
    {
        var run = MpiLauncher.Parity(4, "mode-disagreement", log);
        Assert.Contains("REFUSED: The ranks of the pipeline disagree on training mode: on 3 rank(s) every stage is in training mode, on 1 every stage is in eval mode.", run.Output);
        Assert.Contains("PASS mode-disagreement", run.Output);
    }
}
