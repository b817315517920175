using System;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text.Json;
using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Runtime;

/// <summary>samples/Gpt: a character-level GPT trained on the fortunes text on 4 ranks, briefly.</summary>
public class GptSampleTests(ITestOutputHelper log)
{
    private MpiLauncher.Run Train(string arguments, string directory)
    {
        var run = MpiLauncher.Start(4, MpiLauncher.SampleDll("Gpt"), $"--checkpoint {directory} {arguments}");
        log.WriteLine(run.Output + run.Errors);
        Assert.Equal(0, run.ExitCode);
        return run;
    }

    private static double[] Losses(string output) => output.Split('\n').Where(l => l.StartsWith("step ")).Select(l =>
        double.Parse(l.Split("loss ")[1].Split(' ')[0], CultureInfo.InvariantCulture)).ToArray();

    /// <summary>Started on 3 ranks, the 4-stage sample says how to start it once, without a stack trace, and exits non-zero.</summary>
    [Fact]
    public void StartedOnTheWrongRankCountItSaysTheFixOnce()
    {
        var run = MpiLauncher.Start(3, MpiLauncher.SampleDll("Gpt"), "", timeoutSeconds: 120);
        log.WriteLine(run.Output + run.Errors);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(run.Output + run.Errors, "start it with mpiexec -n 4"));
        Assert.Contains("[pippy] error: CharGpt has 4 stages", run.Errors);
        Assert.DoesNotContain("   at ", run.Output + run.Errors);
    }

    [Fact]
    public void TrainsOnFourRanksWritesACheckpointATraceAndSamplesTextFromTheMergedModel()
    {
        string directory = Path.Combine(Path.GetTempPath(), "pippy-gpt-test-" + Guid.NewGuid().ToString("N"));
        try
        {
            string trace = Path.Combine(directory, "trace.json");
            var output = Train($"--steps 30 --sample 60 --trace {trace}", directory).Output;
            var losses = Losses(output);
            Assert.Equal(30, losses.Length);
            Assert.True(losses[^1] < losses[0] - 1.0, $"the loss did not fall clearly: {losses[0]} -> {losses[^1]}");
            Assert.Matches(@"step   30/30  loss \d\.\d{3} +[\d,]+ tokens/s  bubble \d+ ?%", output);
            Assert.Contains("fortunes databases in /usr/share/games/fortunes", output);
            Assert.True(File.Exists(Path.Combine(directory, "checkpoint.json")));
            Assert.True(File.Exists(Path.Combine(directory, "model.bin")));
            var sampled = output.Split('\n').SkipWhile(l => !l.StartsWith("sampled from ")).Skip(1).FirstOrDefault() ?? "";
            Assert.StartsWith("The ", sampled);

            // One Chrome trace of the last step: a track per rank, receives (waits) included.
            using var json = JsonDocument.Parse(File.ReadAllText(trace));
            var events = json.RootElement.GetProperty("traceEvents").EnumerateArray().ToArray();
            Assert.Equal(new[] { 0, 1, 2, 3 }, events.Select(e => e.GetProperty("tid").GetInt32()).Distinct().OrderBy(t => t));
            Assert.Contains(events, e => e.GetProperty("name").GetString()!.Contains("RECV_F"));
            Assert.Equal(8, events.Count(e => e.GetProperty("tid").GetInt32() == 2 && e.GetProperty("cat").GetString() == "F"));
        }
        finally
        {
            if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void RecomputationTrainsTheSameAndValidationLossesComeFromHeldOutText()
    {
        string directory = Path.Combine(Path.GetTempPath(), "pippy-gpt-test-" + Guid.NewGuid().ToString("N"));
        try
        {
            var plain = Train("--steps 12 --sample 0 --eval-every 6", directory).Output;
            var recomputed = Train("--steps 12 --sample 0 --eval-every 6 --recompute", directory).Output;
            // Recomputation changes what is kept, not what is computed: the same losses to the printed digit.
            Assert.Equal(Losses(plain), Losses(recomputed));
            var validation = System.Text.RegularExpressions.Regex.Matches(recomputed, @"validation loss (\d+\.\d{3}) after step (\d+) \(64 held-out windows, eval mode\)");
            Assert.Equal(new[] { "6", "12" }, validation.Select(m => m.Groups[2].Value));
            Assert.Equal(validation.Select(m => m.Groups[1].Value), System.Text.RegularExpressions.Regex.Matches(plain, @"validation loss (\d+\.\d{3})").Select(m => m.Groups[1].Value));
            Assert.All(validation, m => Assert.InRange(double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), 0.5, 6));
        }
        finally
        {
            if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void TrainsInBFloat16WithFloat32MasterWeightsAndSamplesFromTheMergedModel()
    {
        string directory = Path.Combine(Path.GetTempPath(), "pippy-gpt-test-" + Guid.NewGuid().ToString("N"));
        try
        {
            var output = Train("--bf16 --steps 20 --sample 40 --eval-every 20", directory).Output;
            Assert.Contains(" parameters in BFloat16 ", output);
            var losses = Losses(output);
            Assert.Equal(20, losses.Length);
            Assert.True(losses[^1] < losses[0] - 1.0, $"the loss did not fall clearly in bf16: {losses[0]} -> {losses[^1]}");
            Assert.Matches(@"validation loss \d\.\d{3} after step 20", output);
            var sampled = output.Split('\n').SkipWhile(l => !l.StartsWith("sampled from ")).Skip(1).FirstOrDefault() ?? "";
            Assert.StartsWith("The ", sampled);
        }
        finally
        {
            if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void TwoInterleavedPipelinesSideBySide()
    {
        string directory = Path.Combine(Path.GetTempPath(), "pippy-gpt-test-" + Guid.NewGuid().ToString("N"));
        try
        {
            var output = Train("--steps 12 --sample 0 --data-parallel 2 --schedule interleaved", directory).Output;
            Assert.Contains("4 stages on 2 ranks, Interleaved1F1B, 8 microbatches", output);
            Assert.Contains("2 data-parallel replicas x 2 pipeline ranks", output);
            var losses = Losses(output);
            Assert.Equal(12, losses.Length);
            Assert.True(losses[^1] < losses[0] - 0.5, $"the loss did not fall: {losses[0]} -> {losses[^1]}");
        }
        finally
        {
            if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void HelpExplainsEveryOption()
    {
        var run = MpiLauncher.StartAlone(MpiLauncher.SampleDll("Gpt"), "--help");
        Assert.Equal(0, run.ExitCode);
        foreach (var option in new[] { "--schedule", "--microbatches", "--data-parallel", "--steps", "--checkpoint", "--trace", "--text" })
            Assert.Contains(option, run.Output);
        Assert.Contains("ui.perfetto.dev", run.Output);
    }
}
