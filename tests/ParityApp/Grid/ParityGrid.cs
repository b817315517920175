using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using Pippy.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ParityApp.Grid;

/// <summary>
/// The parity grid: every model feature x every schedule and placement x every training mode, generated from the three
/// lists (<see cref="GridFeature.All"/>, <see cref="GridSchedule.All"/>, <see cref="Modes"/>). Each cell builds the
/// pipeline and the plain model from the same seed and compares the loss, the outputs and every parameter's gradient
/// (and, where the mode trains, every parameter's value) at rtol 1e-5. A combination that is not supported must be
/// refused by Build with the message the grid expects. A job runs the cells whose rank count is its size and prints one
/// line per cell: "CELL feature | schedule (placement) | mode: ok|REFUSED as expected|MISMATCH|ERROR ...".
/// </summary>
public static class ParityGrid
{
    /// <summary>The training modes, each a cell of its own.</summary>
    public static readonly string[] Modes = { "step", "accumulate", "accumulate-no-sync", "data-parallel", "data-parallel-accumulate", "data-parallel-sharded", "adamw-clip", "resume" };

    private const int Rows = 8;

    public static int RanksOf(GridSchedule schedule, string mode) => schedule.PipelineRanks * (mode.StartsWith("data-parallel", StringComparison.Ordinal) ? 2 : 1);

    /// <summary>Runs every cell for this job's size whose name contains <paramref name="filter"/>; true when all passed.</summary>
    public static bool Run(PipelineEnvironment mpi, string directory, string filter)
    {
        var clock = Stopwatch.StartNew();
        int passed = 0, refused = 0, failed = 0;
        foreach (var feature in GridFeature.All)
            foreach (var schedule in GridSchedule.All)
                foreach (var mode in schedule.Refusal is null ? Modes : new[] { "step" })
                {
                    if (RanksOf(schedule, mode) != mpi.Size) continue;
                    string cell = $"{feature.Name} | {schedule} | {mode}";
                    if (!cell.Contains(filter, StringComparison.Ordinal)) continue;
                    var cellClock = Stopwatch.StartNew();
                    string verdict;
                    bool ok;
                    try
                    {
                        using var scope = NewDisposeScope();
                        (ok, verdict) = schedule.Refusal is { } refusal ? ExpectRefusal(mpi, feature, schedule, refusal) : RunCell(mpi, feature, schedule, mode, Path.Combine(directory, Slug(cell)));
                    }
                    catch (Exception e)
                    {
                        (ok, verdict) = (false, $"ERROR {e.GetType().Name}: {e.Message}");
                    }
                    // A cell passes only where it passed on every rank.
                    bool all = mpi.AllTrue(ok);
                    if (!ok || mpi.Rank == 0) Console.WriteLine($"CELL {cell}: {(all ? verdict : ok ? "MISMATCH on another rank" : verdict)} [{cellClock.ElapsedMilliseconds} ms]");
                    if (!all) failed++;
                    else if (schedule.Refusal is not null) refused++;
                    else passed++;
                }
        if (mpi.Rank == 0) Console.WriteLine($"GRID {mpi.Size} ranks: {passed} cells equal the plain model, {refused} refused as expected, {failed} failed, in {clock.Elapsed.TotalSeconds:0.0} s");
        return failed == 0;
    }

    private static string Slug(string cell) => new string(cell.Select(c => char.IsLetterOrDigit(c) ? c : '-').ToArray());

    private static PipelineOptions Options(GridFeature feature, GridSchedule schedule, int dataParallel) => new()
    {
        Schedule = schedule.Csv is null ? schedule.Kind : null,
        StagesPerRank = schedule.Csv is null ? schedule.StagesPerRank : null,
        ScheduleCsv = schedule.Csv,
        Microbatches = schedule.Csv is null ? 4 : null,
        DataParallel = dataParallel,
        Initialization = feature.Initialization,
        Inputs = feature.Inputs ?? new Dictionary<string, MicrobatchSpec>(),
        Target = feature.Target ?? MicrobatchSpec.Split(0),
        PrintPlan = false,
        ReceiveTimeout = TimeSpan.FromSeconds(60),
        // GRID_RECOMPUTE_STAGES=0,2: recomputation for those stages only (PipelineOptions.RecomputeStages).
        RecomputeStages = System.Environment.GetEnvironmentVariable("GRID_RECOMPUTE_STAGES")?.Split(',').Select(int.Parse).ToArray(),
    };

    private static (bool, string) ExpectRefusal(PipelineEnvironment mpi, GridFeature feature, GridSchedule schedule, string refusal)
    {
        torch.manual_seed(0);
        var model = feature.Create();
        try
        {
            using var pipe = feature.Build(model, mpi, Options(feature, schedule, 1));
            return (false, "MISMATCH: Build accepted a combination the grid expects it to refuse");
        }
        catch (ArgumentException e) when (e.Message.Contains(refusal, StringComparison.Ordinal))
        {
            return (true, "REFUSED as expected");
        }
        catch (Exception e)
        {
            return (false, $"MISMATCH: refused with another message: {e.Message}");
        }
    }

    private static (bool, string) RunCell(PipelineEnvironment mpi, GridFeature feature, GridSchedule schedule, string mode, string directory)
    {
        int replicas = mode.StartsWith("data-parallel", StringComparison.Ordinal) ? 2 : 1;
        torch.manual_seed(0);
        var model = feature.Create();
        using var pipe = feature.Build(model, mpi, Options(feature, schedule, replicas));
        if (System.Environment.GetEnvironmentVariable("GRID_PRINT_SCHEDULE") == "1" && mpi.Rank == 0) Console.WriteLine(pipe.Schedule);
        torch.manual_seed(0);
        var plain = feature.CreatePlain();
        var check = new Comparison(pipe, feature.Tolerance);
        switch (mode)
        {
            case "step":
            case "data-parallel":
            {
                var (inputs, target) = feature.Batch(0, Rows);
                var arguments = feature.Arguments(inputs, 0);
                var outputs = pipe.ForwardOutputs(arguments);
                // Evaluation first: it must leave the gradients (checked below) and the stages' training mode alone.
                var evaluated = pipe.EvaluateOutputs(arguments, target, feature.Loss, out var evaluatedOutputs);
                if (pipe.Stages.Any(s => !s.training)) check.Failures.Add("a stage was left in eval mode after Evaluate");
                var loss = pipe.StepOutputs(arguments, target, feature.Loss, out var stepOutputs);
                Tensor[] expectedOutputs;
                Tensor expectedEvaluation;
                plain.eval();
                using (no_grad())
                {
                    expectedOutputs = feature.PlainForward(plain, inputs, feature.Plain(0));
                    expectedEvaluation = feature.Loss(expectedOutputs, target);
                }
                plain.train();
                var expectedLoss = feature.Loss(feature.PlainForward(plain, inputs, feature.Plain(0)), target);
                expectedLoss.backward();
                if (pipe.IsLastStage)
                    for (int k = 0; k < expectedOutputs.Length; k++)
                    {
                        var share = expectedOutputs[k].tensor_split(pipe.DataParallelSize, 0)[pipe.DataParallelRank];
                        check.Values($"output {k}", outputs![k], share);
                        check.Values($"evaluated output {k}", evaluatedOutputs![k], share);
                        check.Values($"step output {k}", stepOutputs![k], share);
                    }
                else if (evaluatedOutputs is not null || stepOutputs is not null) check.Failures.Add("outputs returned on a rank without the last stage");
                // The plain loss is the whole batch's; with data parallelism each replica's evaluation sums to it too.
                check.Values("evaluated loss", evaluated, expectedEvaluation);
                check.Values("loss", loss, expectedLoss.detach());
                check.Gradients(plain);
                break;
            }
            case "accumulate":
            case "accumulate-no-sync":
            case "data-parallel-accumulate":
            {
                // Three Steps without zeroing; the first two inside NoSync where the mode says so (reduced once, by the third).
                for (int step = 0; step < 3; step++)
                {
                    var (inputs, target) = feature.Batch(step, Rows);
                    bool deferred = mode != "accumulate" && step < 2;
                    Tensor loss;
                    using (deferred ? pipe.NoSync() : null) loss = pipe.StepOutputs(feature.Arguments(inputs, step), target, feature.Loss);
                    var expectedLoss = feature.Loss(feature.PlainForward(plain, inputs, feature.Plain(step)), target);
                    expectedLoss.backward();
                    check.Values($"step {step} loss", loss, expectedLoss.detach());
                }
                check.Gradients(plain);
                // NoSync's promise: the accumulated Steps cost one reduction (none where nothing is replicated).
                int expected = mode == "accumulate" ? 3 : 1;
                bool allowed = pipe.GradientReductions == expected || (replicas == 1 && pipe.GradientReductions == 0);
                check.Count++;
                if (!allowed)
                    check.Failures.Add($"{pipe.GradientReductions} gradient reductions for 3 Steps ({(mode == "accumulate" ? "each Step reduces" : "2 inside NoSync, one reduction")})");
                break;
            }
            case "adamw-clip":
            case "resume":
            case "data-parallel-sharded":
            {
                // Sharded: each replica's AdamW holds state for its share only, and Gather spreads the updated values.
                var shard = mode == "data-parallel-sharded" ? pipe.ShardOptimizerState() : null;
                var optimizer = optim.AdamW(shard?.Parameters ?? pipe.Parameters(), 0.01);
                if (shard is not null)
                {
                    // The two replicas' shares of each pipeline rank together hold its parameters once.
                    double mine = mpi.Sum(shard.Elements.Mine), all = mpi.Sum(shard.Elements.All);
                    check.Count++;
                    if (mine * 2 != all) check.Failures.Add($"the replicas' shards hold {mine} elements of {all / 2}");
                }
                var plainParameters = ParameterSet.Distinct(plain.parameters());
                var plainOptimizer = optim.AdamW(plainParameters, 0.01);
                int steps = 3;
                for (int step = 0; step < steps; step++)
                {
                    if (mode is "resume" or "data-parallel-sharded" && step == 1)
                    {
                        // Save after the first step, take a second step, then load and take it again: the same as not
                        // stopping. Sharded: each replica saves and loads its own share of the optimizer's state.
                        pipe.SaveCheckpoint(directory, optimizer, step);
                        var (ti, tt) = feature.Batch(step, Rows);
                        optimizer.zero_grad();
                        pipe.StepOutputs(feature.Arguments(ti, step), tt, feature.Loss);
                        optimizer.step();
                        shard?.Gather();
                        long at = pipe.LoadCheckpoint(directory, optimizer);
                        if (at != step) throw new InvalidOperationException($"the checkpoint says step {at}, not {step}");
                    }
                    var (inputs, target) = feature.Batch(step, Rows);
                    optimizer.zero_grad();
                    var loss = pipe.StepOutputs(feature.Arguments(inputs, step), target, feature.Loss);
                    bool clip = mode is "adamw-clip" or "data-parallel-sharded";
                    double norm = clip ? pipe.ClipGradNorm(0.5) : 0;
                    optimizer.step();
                    shard?.Gather();

                    plainOptimizer.zero_grad();
                    var expectedLoss = feature.Loss(feature.PlainForward(plain, inputs, feature.Plain(step)), target);
                    expectedLoss.backward();
                    double expectedNorm = clip ? nn.utils.clip_grad_norm_(plainParameters, 0.5) : 0;
                    plainOptimizer.step();
                    check.Values($"step {step} loss", loss, expectedLoss.detach());
                    if (clip) check.Values($"step {step} gradient norm", tensor(norm), tensor(expectedNorm));
                }
                check.Parameters(plain, steps);
                if (mode is "resume" or "data-parallel-sharded" && mpi.Rank == 0) Directory.Delete(directory, recursive: true);
                break;
            }
            default:
                throw new ArgumentException($"unknown grid mode '{mode}'");
        }
        // GRID_PRINT_PATHS=1: which path this rank's tensor messages of the cell's last Step took, and on which host (the two-host tests read it).
        if (System.Environment.GetEnvironmentVariable("GRID_PRINT_PATHS") == "1")
        {
            var last = pipe.LastStep;
            Console.WriteLine($"PATHS rank {mpi.Rank} on {System.Environment.MachineName}: {last.MessagesViaSharedMemory} messages ({last.BytesViaSharedMemory} bytes) " +
                              $"through shared memory, {last.MessagesViaMpi} ({last.BytesViaMpi} bytes) through MPI");
            // A line of its own, only where a pair of ranks uses CUDA IPC (the PATHS line is read by a fixed pattern).
            if (last.MessagesViaCudaIpc > 0) Console.WriteLine($"IPC rank {mpi.Rank}: {last.MessagesViaCudaIpc} messages ({last.BytesViaCudaIpc} bytes) through CUDA IPC");
        }
        var untrained = Parity.TrainedByNoStage(mpi, pipe, plain);
        check.Count++;
        if (untrained.Length > 0) check.Failures.Add($"trained by the plain model, held by no stage: {string.Join(", ", untrained)}");
        return (check.Ok, check.Ok ? $"ok ({check.Count} values)" : "MISMATCH " + string.Join("; ", check.Failures.Take(4)));
    }

    /// <summary>Comparisons of one cell on this rank at the feature's tolerance (rtol 1e-5 and atol 1e-5 of the reference's largest magnitude, 2e-2 in bf16).</summary>
    private sealed class Comparison(PipelineRunner pipe, double tolerance)
    {
        public bool Ok => Failures.Count == 0;
        public int Count { get; set; }
        public List<string> Failures { get; } = new();

        public void Values(string what, Tensor? actual, Tensor expected)
        {
            Count++;
            if (actual is null) { Failures.Add($"{what} missing"); return; }
            if (!actual.shape.SequenceEqual(expected.shape)) { Failures.Add($"{what}: shape [{string.Join(",", actual.shape)}] against [{string.Join(",", expected.shape)}]"); return; }
            var (close, maxDiff, scale) = Parity.Closeness(actual, expected, relativeTolerance: tolerance);
            if (!close) Failures.Add($"{what}: max |diff| {maxDiff:E2} (max |expected| {scale:E2})");
        }

        public void Gradients(nn.Module plain)
        {
            var expected = Parity.AllParameters(plain);
            foreach (var (name, parameter) in pipe.Stages.SelectMany(s => s.named_parameters()).DistinctBy(p => p.name))
            {
                if (parameter.grad is null && expected[name].grad is null) continue;
                if (expected[name].grad is not { } grad) { Count++; Failures.Add($"grad {name}: present, reference has none"); continue; }
                Values($"grad {name}", parameter.grad, grad);
            }
        }

        public void Parameters(nn.Module plain, int steps)
        {
            var expected = Parity.AllParameters(plain);
            foreach (var (name, parameter) in pipe.Stages.SelectMany(s => s.named_parameters()).DistinctBy(p => p.name))
                Values($"{name} after {steps} steps", parameter, expected[name]);
        }
    }
}
