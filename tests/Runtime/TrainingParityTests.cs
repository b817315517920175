using System;
using System.IO;
using System.Linq;
using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Runtime;

/// <summary>
/// Training the tied GPT on 4 pipeline ranks against the plain model in one process (tests/ParityApp/Training.cs):
/// optimizers, LR scheduler, global gradient clipping, mean-reduced losses, and checkpoints that resume bit for bit
/// and merge into one file the plain model loads.
/// </summary>
public class TrainingParityTests(ITestOutputHelper log)
{
    private MpiLauncher.Run Run(string arguments, bool expectPass = true)
    {
        var run = MpiLauncher.Parity(4, arguments, log);
        if (expectPass) Assert.Contains("PASS", run.Output);
        return run;
    }

    [Theory]
    [InlineData("train-sgd")]   // SGD with momentum, 3 steps
    [InlineData("train-adamw")] // AdamW with a StepLR scheduler, 3 steps
    [InlineData("train-clip")]  // global gradient-norm clipping against clip_grad_norm_
    [InlineData("train-mean")]  // a mean-reduced loss with LossReduction.Mean
    public void TrainingStepsMatchThePlainModel(string scenario)
    {
        var output = Run(scenario).Output;
        // Every rank compared every parameter of its stages after the last step, the tied ones included.
        Assert.Contains("[rank 0 stage 0] parameter tokens.weight after", output);
        Assert.Contains("[rank 3 stage 3] parameter head.weight after", output);
    }

    [Theory]
    [InlineData("train-dp-sgd")]   // 2 data-parallel replicas x 2 pipeline ranks, SGD with momentum
    [InlineData("train-dp-adamw")] // AdamW and global clipping
    [InlineData("train-dp-mean")]  // a mean-reduced loss over the global batch
    public void DataParallelTimesPipelineMatchesThePlainModelOnTheGlobalBatch(string scenario)
    {
        var output = Run(scenario).Output;
        Assert.Contains("4 ranks = 2 data-parallel replicas x 2 pipeline ranks: replica 0 on ranks 0-1; replica 1 on ranks 2-3", output);
        // The tied embedding and head, on both stages of both replicas, equal the plain model's after the steps.
        foreach (int rank in new[] { 0, 2 }) Assert.Contains($"[rank {rank} stage 0] parameter tokens.weight after 3 steps", output);
        foreach (int rank in new[] { 1, 3 }) Assert.Contains($"[rank {rank} stage 1] parameter head.weight after 3 steps", output);
        Assert.Contains("[rank 1 stage 1] forward after training (replica 0 of 2)", output);
        Assert.Contains("[rank 3 stage 1] forward after training (replica 1 of 2)", output);
    }

    [Fact]
    public void ResumingFromACheckpointGivesTheUninterruptedRunBitForBit()
    {
        string directory = Path.Combine(Path.GetTempPath(), "pippy-resume-" + Guid.NewGuid().ToString("N"));
        try
        {
            var straight = Run("resume 0 6 - -", expectPass: false).Output;
            var first = Run($"resume 0 3 - {directory}", expectPass: false).Output;
            Assert.Equal(new[] { "checkpoint.json", "rank0.step3.pippy", "rank1.step3.pippy", "rank2.step3.pippy", "rank3.step3.pippy" },
                Directory.GetFiles(directory).Select(Path.GetFileName).OrderBy(f => f, StringComparer.Ordinal));
            var second = Run($"resume 3 3 {directory} {directory}", expectPass: false).Output; // a new job, then saved again
            string[] Lines(string output, string marker) => output.Split('\n').Where(l => l.Contains(marker)).OrderBy(l => l, StringComparer.Ordinal).ToArray();
            var straightLosses = Lines(straight, "loss bits");
            Assert.Equal(6, straightLosses.Length);
            Assert.Equal(straightLosses.Take(3), Lines(first, "loss bits"));
            Assert.Equal(straightLosses.Skip(3), Lines(second, "loss bits"));
            Assert.Equal(Lines(straight, "parameters digest"), Lines(second, "parameters digest"));
            // The second save replaced the first: only the step-6 shards are named and kept, and no temporary file is left.
            Assert.Equal(new[] { "checkpoint.json", "rank0.step6.pippy", "rank1.step6.pippy", "rank2.step6.pippy", "rank3.step6.pippy" },
                Directory.GetFiles(directory).Select(Path.GetFileName).OrderBy(f => f, StringComparer.Ordinal));
        }
        finally
        {
            if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void MergedCheckpointLoadsIntoThePlainModelAndGivesThePipelinesOutput()
    {
        string directory = Path.Combine(Path.GetTempPath(), "pippy-merge-" + Guid.NewGuid().ToString("N"));
        try
        {
            var output = Run($"merge {directory}").Output;
            Assert.Contains("plain model loaded from the merged checkpoint: output: max |diff|", output);
            string plain = Path.Combine(directory, "merged.model.bin");
            Assert.True(File.Exists(plain));
            // And back: the plain checkpoint loaded into a new pipeline job gives the same output as the plain model.
            Assert.Contains("pipeline built from the plain checkpoint: output: max |diff|", Run($"split {plain}").Output);
        }
        finally
        {
            if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void EachRankKeepsOnlyItsShareOfAFourStageModel()
    {
        var output = Run("memory").Output;
        var lines = output.Split('\n').Where(l => l.Contains(" released ")).ToArray();
        Assert.Equal(4, lines.Length);
        foreach (var line in lines)
        {
            // 4 equal stages of 2048 x 2048 + 2048 floats: each rank keeps one and releases the other three.
            Assert.Contains("model 67141632 bytes, kept 16785408, released 50356224", line);
            int drop = int.Parse(System.Text.RegularExpressions.Regex.Match(line, @"drop (-?\d+) MiB").Groups[1].Value);
            Assert.True(drop >= 36, $"resident memory fell by only {drop} MiB of the 48 MiB released: {line}");
        }
    }
}
