using System.Linq;
using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Runtime;

/// <summary>
/// Every construct of the pipeline DSL on real MPI ranks (tests/ParityApp): each rank checks its outputs, loss and
/// every gradient of its stage against the plain model in one process, and prints one line per check.
/// </summary>
public class DslParityTests(ITestOutputHelper log)
{
    private string Run(string scenario, int ranks, int checks = 1)
    {
        var run = MpiLauncher.Parity(ranks, scenario, log);
        Assert.Contains($"PASS {scenario}", run.Output);
        Assert.Equal(ranks * checks, run.Output.Split('\n').Count(l => l.Contains("] loss:") && l.EndsWith(" ok")));
        return run.Output;
    }

    private static int GradientsChecked(string output, int stage) =>
        int.Parse(output.Split('\n').Single(l => l.StartsWith($"[rank {stage} stage {stage}] checked ")).Split(' ')[5]);

    [Fact]
    public void EmbeddingBagTokensAndOffsetsDividedIntoWholeBagsByACustomSpecEqualThePlainModel()
    {
        // tests/ParityApp/Models/BagClassifier.cs: a flat token list and bag offsets, which Split(0) cannot divide
        // (a later part's offsets do not start at 0), divided with the per-bag target by one MicrobatchSpec.Custom
        // into 4 microbatches of whole bags: output, loss and every gradient equal the plain model's.
        var output = Run("embedding-bag", 2);
        Assert.Equal(1, GradientsChecked(output, 0));
        Assert.Equal(4, GradientsChecked(output, 1));
        Assert.Contains("[rank 1 stage 1] output 0: ", output);
    }

    [Fact]
    public void EmbeddingBagWithACustomSpecAndDataParallelEqualsThePlainModel()
    {
        // DataParallel = 2 on 4 ranks: the custom function first divides the bags between the replicas, then each
        // replica's share into 4 microbatches; each replica's output is its bags' rows of the plain model's output,
        // and the loss and gradients (summed across replicas) are the plain model's.
        var output = Run("embedding-bag-dp", 4);
        Assert.Contains("[rank 3 replica 1 stage 1] output (this replica's bags): ", output);
        Assert.Contains("[rank 2 replica 1 stage 0] checked 1 gradients", output);
        Assert.Contains("[rank 1 replica 0 stage 1] checked 4 gradients", output);
    }

    [Fact]
    public void SkipConnectionFromStageZeroToStageThree()
    {
        var output = Run("residual", 4);
        Assert.Contains("stage 3 (rank 3): head; in: h0 (stage 0 output 0), h2 (stage 2 output 0)", output);
    }

    [Fact]
    public void InlineMarkerSplitEndAndSplitBeginCutTheStagesTheySay()
    {
        // PipelineSplit.Here() after the embedding, [SplitEnd] first, [SplitBegin] second: four stages, the third with
        // no submodule, and the embedding's output skipping to the last; every gradient equals the plain model's.
        var output = Run("marked-splits", 4);
        Assert.Contains("stage 0 (rank 0): embed;", output);
        Assert.Contains("stage 1 (rank 1): first; in: h0 (stage 0 output 0)", output);
        Assert.Contains("stage 2 (rank 2): no submodules; in: h1 (stage 1 output 0)", output);
        Assert.Contains("stage 3 (rank 3): second, head; in: gated (stage 2 output 0), h0 (stage 0 output 0)", output);
        Assert.Contains("[rank 2 stage 2] checked 0 gradients", output);
    }

    [Fact]
    public void OptionalTensorInputGivenOrNullEqualsThePlainModel()
    {
        // forward(Tensor x, Tensor? shift): stage 1 reads shift from the batch. Given, it is divided into microbatches;
        // null, every microbatch (and the plain model) gets null. Two checks, each of output, loss and every gradient.
        var output = Run("optional-input", 2, checks: 2);
        Assert.Contains("stage 1 (rank 1): second; in: shift (model input 1), h (stage 0 output 0)", output);
    }

    [Theory]
    [InlineData(4, "GPipe", "OneFOneB", "InterleavedZeroBubble")]
    [InlineData(2, "Interleaved1F1B", "ZeroBubbleV", "DualPipeV")]
    public void PlainArgumentsGivenToTheStagesThatReadThemEqualThePlainModel(int ranks, string first, string second, string third)
    {
        // forward(Tensor x, Tensor? mask, bool causal, int repeats, double scale, OutputMode mode): 3 steps whose plain
        // arguments all change, under 3 schedules: Forward's output, Evaluate's loss, each Step's loss, output and every
        // gradient against the plain model; then a wrong type, the tensors alone and ranks that disagree are refused.
        var run = MpiLauncher.Parity(ranks, "plain-arguments", log);
        Assert.Contains("PASS plain-arguments", run.Output);
        var lines = run.Output.Split('\n');
        foreach (string schedule in new[] { first, second, third })
        {
            Assert.Equal(ranks * 3, lines.Count(l => System.Text.RegularExpressions.Regex.IsMatch(l, $@" {schedule}\] step \d loss: .* ok$")));
            Assert.Equal(ranks * 4, lines.Count(l => l.Contains($" {schedule}] ") && l.EndsWith(": refused ok")));
        }
        Assert.DoesNotContain("MISMATCH", run.Output);
        Assert.Contains("stage 1 (rank 1): middle, mixer; in: h (stage 0 output 0), plain: mode, scale, repeats; out: h", run.Output);
        Assert.Contains("stage 3 (rank " + (ranks == 4 ? 3 : 1) + "): last; in: h (stage 2 output 0), plain: mode; out: output", run.Output);
    }

    [Fact]
    public void ValueReadByEveryLaterStageHasItsGradientsSummed()
    {
        var output = Run("fanout", 4);
        Assert.Contains("stage 2 (rank 2): b; in: e (stage 0 output 0), u (stage 1 output 0)", output);
        Assert.Contains("stage 3 (rank 3): c; in: e (stage 0 output 0), v (stage 2 output 0)", output);
    }

    [Fact]
    public void TokenIdsMasksAndDetachedTensorsCrossWithoutGradientMessages()
    {
        var output = Run("tokens", 2);
        // Five values for each of 4 microbatches go forward; only the hidden state's gradient comes back.
        Assert.Contains("[rank 0 stage 0] messages sent in the step: 20 activations, 0 gradients", output);
        Assert.Contains("[rank 1 stage 1] messages sent in the step: 0 activations, 4 gradients", output);
    }

    [Fact]
    public void UsingDeclarationsAndADisposeScopeInForwardMatchThePlainModel()
    {
        // The mask and the hidden state are declared with using in stage 0 and leave it; stage 1 frees its own
        // intermediate; the last stage hands the output out of its scope through the scope variable.
        var output = Run("using", 3);
        Assert.Contains("stage 1 (rank 1): norm, layer1; in: h1 (stage 0 output 0), mask (stage 0 output 1); out: h2", output);
        Assert.Contains("stage 2 (rank 2): head; in: keep (model input 1), h2 (stage 1 output 0)", output);
    }

    [Fact]
    public void UsingDeclarationsInForwardDoNotGrowMemoryOverAHundredSteps()
    {
        // glibc's allocator returns freed large blocks to the system only above its mmap threshold; fixing the
        // threshold (as the memory-peak test does) keeps its adaptive threshold from moving between the two readings.
        var run = MpiLauncher.Parity(3, "using-memory 100", log, ("MALLOC_MMAP_THRESHOLD_", "1048576"));
        Assert.Contains("PASS using-memory", run.Output);
        var lines = run.Output.Split('\n').Where(l => l.Contains("using-memory: resident")).ToArray();
        Assert.Equal(3, lines.Length);
        foreach (var line in lines)
        {
            var words = line.Split(' ');
            long growthKiB = long.Parse(words[System.Array.IndexOf(words, "(growth") + 1]);
            Assert.True(growthKiB < 16 * 1024, $"resident memory grew by {growthKiB} KiB from step 10 to step 100: {line}");
            int tensors = System.Array.IndexOf(words, "tensors");
            Assert.Equal(words[tensors + 1], words[tensors + 5]); // as many live tensors after step 100 as after step 10
        }
    }

    [Fact]
    public void NestedSplitCallsOfAnExpressionBodiedForwardAreHoisted()
    {
        var output = Run("nested", 3);
        Assert.Contains("stage 1 (rank 1): b; in: __a (stage 0 output 0); out: __b", output);
        Assert.Contains("stage 2 (rank 2): c; in: x (model input 0), __b (stage 1 output 0)", output);
    }

    [Fact]
    public void VaeHelperMethodsSplitAndTrainEveryParameter()
    {
        // [SplitEnd] fc22 is used inside Encode; Decode's fc3 and fc4 are held by stage 1, 'norm' (used through Act by both) by both.
        var output = Run("vae", 2);
        Assert.Contains("stage 0 (rank 0): fc1, fc21, fc22, norm;", output);
        Assert.Contains("stage 1 (rank 1): fc3, fc4, norm;", output);
        Assert.Contains("[rank 1 stage 1] grad fc4.weight:", output);
        Assert.Equal(2, output.Split('\n').Count(l => l.Contains("parameters held by the stages: 12 of 12 ok")));
    }

    [Fact]
    public void ThreeInputsTupleOutputBranchesAndLoopsInsideStages()
    {
        var output = Run("three-inputs", 3);
        Assert.Contains("stage 2 (rank 2): merge; in: r (stage 1 output 0), bias (model input 2); out: output.Item1, output.Item2", output);
    }

    [Fact]
    public void SixInputsEachReadByItsOwnStage()
    {
        // The most inputs a TorchSharp module's forward takes; later stages read theirs straight from the batch.
        var output = Run("six-inputs", 3);
        Assert.Contains("stage 0 (rank 0): first; in: a (model input 0), b (model input 1)", output);
        Assert.Contains("stage 1 (rank 1): second; in: c (model input 2), d (model input 3), h (stage 0 output 0)", output);
        Assert.Contains("stage 2 (rank 2): third; in: e (model input 4), f (model input 5), h (stage 1 output 0)", output);
    }

    [Fact]
    public void SubmoduleUsedByTwoStagesIsReplicatedAndItsGradientsSummed()
    {
        var output = Run("shared", 3);
        Assert.Contains("replicated shared (stage 0: shared.*; stage 2: shared.*)", output);
        Assert.Contains("[rank 2] spoiled shared.weight before Build", output); // the broadcast from stage 0 repairs it
        Assert.Equal(4, GradientsChecked(output, 0));
        Assert.Equal(4, GradientsChecked(output, 2));
    }

    [Fact]
    public void GptWithTiedEmbeddingAndHeadOnFourStages()
    {
        var output = Run("gpt", 4);
        Assert.Contains("replicated tied 'embedding' (stage 0: tokens.weight; stage 3: head.weight)", output);
        Assert.Contains("[rank 3] spoiled tokens.weight before Build", output); // the same tensor as head.weight there
        // Five blocks in two stages: 3 and 2 blocks of 6 parameters; the second also holds the final norm.
        Assert.Equal(18, GradientsChecked(output, 1));
        Assert.Equal(14, GradientsChecked(output, 2));
    }

    [Fact]
    public void ModuleListWithAnIndexedLoopIsDividedThreeTwoTwo()
    {
        var output = Run("deep", 3);
        Assert.Equal(new[] { 6, 4, 4 }, new[] { 0, 1, 2 }.Select(s => GradientsChecked(output, s)));
    }

    [Fact]
    public void InputsSplitAlongDimensionOneReplicatedAndOutputsMergedBySpec() => Run("sequence-first", 2);

    [Fact]
    public void SequentialDividedIntoThreeStagesEqualsThePlainModelUnder1F1BAndGPipeAndByTimeWithItsParameterNames()
    {
        // tests/ParityApp/Models/SequentialCnn.cs: [SplitInto(3)] on a VGG-style Sequential of named children.
        var run = MpiLauncher.Parity(3, "sequential-cnn", log);
        Assert.Contains("PASS sequential-cnn", run.Output);
        // Three checks (1F1B, GPipe, 1F1B balanced by measured time) on each of the 3 ranks.
        Assert.Equal(9, run.Output.Split('\n').Count(l => l.Contains("] loss:") && l.EndsWith(" ok")));
        Assert.Contains("[rank 0] stage 0 state_dict: layers.conv1.weight, layers.conv1.bias, layers.conv2.weight, layers.conv2.bias ok", run.Output);
        Assert.Contains("[rank 1] stage 1 state_dict: layers.fc1.weight, layers.fc1.bias ok", run.Output);
        Assert.Contains("[rank 2] stage 2 state_dict: layers.fc2.weight, layers.fc2.bias ok", run.Output);
        Assert.Contains("grad layers.conv1.weight: max |diff|", run.Output);
    }

    [Fact]
    public void SequentialPlainCheckpointLoadsIntoThePipelineAndPipelineCheckpointMergesBack()
    {
        string directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "pippy-sequential-" + System.Guid.NewGuid().ToString("N"));
        try
        {
            // A plain model's save file, loaded into the model before Build: the pipeline's output is the plain model's.
            var split = MpiLauncher.Parity(3, $"sequential-split {directory}", log);
            Assert.Contains("PASS sequential-split", split.Output);
            Assert.Contains("pipeline built from the plain checkpoint: output: max |diff|", split.Output);
            // Trained 2 steps, saved per stage, merged into the unchanged model's one file: the plain model loads it.
            var merge = MpiLauncher.Parity(3, $"sequential-merge {System.IO.Path.Combine(directory, "checkpoint")}", log);
            Assert.Contains("PASS sequential-merge", merge.Output);
            Assert.Contains("plain model loaded from the merged checkpoint: output: max |diff|", merge.Output);
        }
        finally
        {
            if (System.IO.Directory.Exists(directory)) System.IO.Directory.Delete(directory, recursive: true);
        }
    }
}
