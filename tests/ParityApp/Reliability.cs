using System;
using System.Diagnostics;
using System.Threading;
using ParityApp.Models;
using Pippy.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace ParityApp;

/// <summary>
/// Failures on purpose, on 3 ranks: in a stage's forward, in the loss, in a backward, a stuck rank, a rank that never
/// joins a collective (ClipGradNorm's allreduce, WriteTrace's gather; the loss broadcast on 2 ranks, the data-parallel
/// allreduce on 4), and a job to kill.
/// </summary>
public static class Reliability
{
    public static bool Run(PipelineEnvironment mpi, string mode)
    {
        torch.manual_seed(0);
        var (x, y) = (randn(8, 6), randn(8, 6));
        int lossCalls = 0;
        Func<Tensor, Tensor, Tensor> loss = mode switch
        {
            "loss" => (o, t) => ++lossCalls == 2 ? throw new ArithmeticException("the loss failed on its second microbatch") : nn.functional.mse_loss(o, t),
            "backward" => (o, t) => nn.functional.mse_loss(o, t).detach(), // nothing to differentiate: the last stage's backward fails
            _ => (o, t) => nn.functional.mse_loss(o, t),
        };
        if (mode == "forward" && mpi.Rank == 1) Bomb.ExplodeOnCall = 2; // microbatch 1 of the first step
        if (mode == "mismatch")
        {
            // 2 ranks: the first step's forward on stage 1 meets a value of the wrong width.
            using var mismatched = Mismatched.Pipeline.Build(new Mismatched(), mpi, new PipelineOptions { PrintPlan = false });
            mismatched.Step(x, randn(8, 3), (o, t) => nn.functional.mse_loss(o, t));
            return false;
        }
        if (mode == "different")
        {
            // 2 ranks whose configurations disagree: rank 1 builds a narrower model. Refused by Build, before any step.
            using var configured = Configured.Pipeline.Build(new Configured(width: mpi.Rank == 1 ? 4 : 5), mpi, new PipelineOptions { PrintPlan = false });
            Console.WriteLine($"[rank {mpi.Rank}] built");
            configured.Step(x, randn(8, 3), (o, t) => nn.functional.mse_loss(o, t));
            Console.WriteLine($"[rank {mpi.Rank}] stepped");
            return false;
        }
        if (mode is "caught" or "caught-exit")
        {
            // 2 ranks, ZB-V (stages 0 and 3 on rank 0): rank 0's loss throws on its second microbatch. Rank 1 still
            // holds rank 0's shared-memory slot of that microbatch's first value (it frees it after stage 1's backward,
            // which waits for the gradient rank 0 will never send), and waits for rank 0. The user's code catches the
            // exception around `using var pipe`: Dispose runs while it unwinds and must not wait for that slot or
            // those messages (ReceiveTimeout is 60 s). "caught" then rethrows (the job ends by MPI_Abort at once);
            // "caught-exit" returns, and rank 1's watchdog ends the job.
            long thrownAt = 0;
            Func<Tensor, Tensor, Tensor> failing = (o, t) =>
            {
                if (++lossCalls != 2) return nn.functional.mse_loss(o, t);
                thrownAt = Stopwatch.GetTimestamp();
                throw new ArithmeticException("the loss failed on its second microbatch");
            };
            try
            {
                using var caught = Stalling.Pipeline.Build(new Stalling(), mpi, new PipelineOptions { PrintPlan = false, ReceiveTimeout = TimeSpan.FromSeconds(mode == "caught" ? 60 : 20) });
                for (int step = 0; step < 2; step++) caught.Step(x, y, failing);
            }
            catch (Pippy.Runtime.Execution.PipelineActionException e)
            {
                // From the throw to here: the interpreter unwinding and the runner's Dispose (rank 1 is ended by its
                // watchdog, which throws in its receive, and in "caught-exit" catches that too).
                Console.WriteLine(thrownAt == 0
                    ? $"[rank {mpi.Rank}] caught '{e.Message}'"
                    : $"[rank {mpi.Rank}] caught '{e.Message}'; Dispose took {Stopwatch.GetElapsedTime(thrownAt).TotalSeconds:F2} s");
                if (mode == "caught") throw;
                Console.WriteLine($"[rank {mpi.Rank}] exits");
                return false;
            }
            return true;
        }
        if (mode is "loss-broadcast" or "data-parallel")
        {
            // A rank held in its last backward while the others finish their actions and wait in the collectives
            // that end a step. "loss-broadcast", 2 ranks: ZB-V places stages 0 and 3 on rank 0, so rank 1 waits in
            // the loss broadcast, whose root (the last stage) is the held rank. "data-parallel", 4 ranks: two
            // interleaved pipelines of 2 ranks (stages 0 and 2 on ranks 0 and 2, the last stage on ranks 1 and 3);
            // rank 2 waits for rank 0 in the data-parallel allreduce of the gradients.
            if (mpi.Rank == 0) Staller.StallOnCall = 4; // stage 0's forward of the first step's last microbatch
            var stallingOptions = new PipelineOptions { PrintPlan = false, ReceiveTimeout = TimeSpan.FromSeconds(3) };
            if (mode == "data-parallel")
                stallingOptions = new PipelineOptions
                {
                    PrintPlan = false, ReceiveTimeout = TimeSpan.FromSeconds(3), DataParallel = 2,
                    Schedule = Pippy.Schedules.ScheduleKind.Interleaved1F1B, StagesPerRank = 2,
                };
            using var stalling = Stalling.Pipeline.Build(new Stalling(), mpi, stallingOptions);
            Console.WriteLine($"[rank {mpi.Rank}] built");
            stalling.Step(x, y, loss);
            Console.WriteLine($"[rank {mpi.Rank}] stepped");
            return false;
        }
        var options = new PipelineOptions { PrintPlan = false, ReceiveTimeout = TimeSpan.FromSeconds(mode is "stuck" or "collective" or "trace" ? 3 : 600) };
        using var pipe = Faulty.Pipeline.Build(new Faulty(), mpi, options);
        Console.WriteLine($"[rank {mpi.Rank}] pid {Environment.ProcessId} on {Environment.MachineName}");
        if (mode == "stuck" && mpi.Rank == 1)
        {
            Thread.Sleep(TimeSpan.FromSeconds(60)); // never takes part: the others' watchdog must end the job
            return false;
        }
        if (mode == "collective")
        {
            pipe.Step(x, y, loss);
            if (mpi.Rank == 1) Thread.Sleep(TimeSpan.FromSeconds(60)); // never joins the gradient-norm allreduce
            pipe.ClipGradNorm(1.0);
            return false;
        }
        if (mode == "trace")
        {
            pipe.Step(x, y, loss);
            if (mpi.Rank == 1) Thread.Sleep(TimeSpan.FromSeconds(60)); // never joins the gather of WriteTrace, whose root is rank 0
            pipe.WriteTrace(System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"pippy-unwritten-trace-{Environment.ProcessId}.json"));
            return false;
        }
        var clock = Stopwatch.StartNew();
        int steps = mode == "run" ? int.MaxValue : 2;
        for (int step = 0; step < steps && clock.Elapsed < TimeSpan.FromSeconds(60); step++)
        {
            pipe.Step(x, y, loss);
            if (mpi.Rank == 0 && mode == "run") Console.WriteLine($"step {step}");
        }
        return true;
    }
}
