using System;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Runtime;

/// <summary>samples/Bert: a character-level BERT with a padding mask, trained on fortunes sentences on 4 ranks, briefly.</summary>
public class BertSampleTests(ITestOutputHelper log)
{
    private static double[] Losses(string output) => output.Split('\n').Where(l => l.StartsWith("step ")).Select(l =>
        double.Parse(l.Split("loss ")[1].Split(' ')[0], CultureInfo.InvariantCulture)).ToArray();

    /// <summary>
    /// Each step against the plain model on every rank (loss and every gradient of the rank's stage, the padding mask
    /// crossing from stage 0 to the others), a falling loss, and the checkpoint merged into the plain model that then
    /// fills in masked characters.
    /// </summary>
    [Fact]
    public void TrainsOnFourRanksLikeThePlainModelAndFillsInMaskedCharactersFromTheMergedCheckpoint()
    {
        string directory = Path.Combine(Path.GetTempPath(), "pippy-bert-test-" + Guid.NewGuid().ToString("N"));
        try
        {
            var run = MpiLauncher.Start(4, MpiLauncher.SampleDll("Bert"), $"--checkpoint {directory} --steps 6 --batch 16 --log-every 1 --check-parity", timeoutSeconds: 240);
            log.WriteLine(run.Output + run.Errors);
            Assert.Equal(0, run.ExitCode);
            var output = run.Output;
            Assert.Contains("fortunes databases in /usr/share/games/fortunes", output);
            Assert.Contains("in: keyMask (stage 0 output 0), x (stage 2 output 0)", output + run.Errors);
            Assert.Matches(@"\nPASS: pipeline against the plain model in one process, every step: largest loss difference [\d.E+-]+, largest gradient difference [\d.E+-]+ \(relative tolerance 1E-004\)", output);
            Assert.DoesNotContain("MISMATCH", output);
            Assert.Equal(4, Regex.Matches(output, @"\] parity: \d+ gradients compared").Count);

            var losses = Losses(output);
            Assert.Equal(6, losses.Length);
            Assert.True(losses[^1] < losses[0] - 0.5, $"the loss did not fall: {losses[0]} -> {losses[^1]}");

            Assert.True(File.Exists(Path.Combine(directory, "checkpoint.json")));
            Assert.True(File.Exists(Path.Combine(directory, "model.bin")));
            Assert.Contains("merged into " + Path.Combine(directory, "model.bin") + " and loaded in one process", output);
            Assert.Matches(@"masked-character accuracy on held-out text: \d+\.\d % of [\d,]+ masked characters", output);
            Assert.Matches(@"  Th_ cat sat on the m_t\. +-> Th. cat sat on the m.t\.", output);
        }
        finally
        {
            if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void HelpExplainsEveryOption()
    {
        var run = MpiLauncher.StartAlone(MpiLauncher.SampleDll("Bert"), "--help");
        Assert.Equal(0, run.ExitCode);
        foreach (var option in new[] { "--steps", "--batch", "--schedule", "--seed", "--checkpoint", "--check-parity" })
            Assert.Contains(option, run.Output);
    }
}
