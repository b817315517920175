using System;
using System.Globalization;
using System.IO;
using System.Linq;
using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Runtime;

/// <summary>samples/Training on 4 ranks, as one pipeline of 4 stages and as 2 data-parallel pipelines of 2.</summary>
public class TrainingSampleTests(ITestOutputHelper log)
{
    private (string[] Losses, string Directory) Train(string mode)
    {
        string directory = Path.Combine(Path.GetTempPath(), $"pippy-sample-{mode}-{Guid.NewGuid():N}");
        var run = MpiLauncher.Start(4, MpiLauncher.SampleDll("Training"), $"--mode {mode} --steps 8 --checkpoint {directory}");
        log.WriteLine(run.Output + run.Errors);
        Assert.Equal(0, run.ExitCode);
        Assert.True(File.Exists(Path.Combine(directory, "checkpoint.json")), "no checkpoint was written");
        return (run.Output.Split('\n').Where(l => l.StartsWith("step ")).Select(l => l.Trim()).ToArray(), directory);
    }

    [Fact]
    public void BothLayoutsTrainTheSameWayAndWriteACheckpoint()
    {
        var (pipeline, first) = Train("pp4");
        var (dataParallel, second) = Train("dp2xpp2");
        try
        {
            Assert.Equal(8, pipeline.Length);
            double Loss(string line) => double.Parse(line.Split(' ')[3], CultureInfo.InvariantCulture);
            Assert.True(Loss(pipeline[^1]) < Loss(pipeline[0]) - 0.1, $"the loss did not fall: {pipeline[0]} ... {pipeline[^1]}");
            // The same model and batch, 4 stages or 2 replicas x 2 stages: the same steps (up to float rounding).
            Assert.Equal(8, dataParallel.Length);
            for (int i = 0; i < 8; i++) Assert.Equal(Loss(pipeline[i]), Loss(dataParallel[i]), 3);
        }
        finally
        {
            foreach (var directory in new[] { first, second }) if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        }
    }
}
