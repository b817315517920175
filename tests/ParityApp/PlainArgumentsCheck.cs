using System;
using System.Linq;
using ParityApp.Models;
using Pippy.Runtime;
using Pippy.Schedules;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp;

/// <summary>
/// forward's plain arguments (tests/ParityApp/Models/PlainArguments.cs) against the plain model, three steps whose
/// arguments all change (the mask given, then null), under a schedule: Forward's output, Evaluate's loss, each Step's
/// loss, output and every gradient. Then two refusals: an argument of the wrong type, and ranks that disagree.
/// </summary>
public static class PlainArgumentsCheck
{
    private static readonly (bool Mask, bool Causal, int Repeats, double Scale, OutputMode Mode)[] Steps =
    {
        (true, true, 2, 0.5, OutputMode.Shift),
        (false, false, 0, 1.5, OutputMode.Negate),
        (true, true, 1, 1.0, OutputMode.Plain),
    };

    public static bool Run(PipelineEnvironment mpi, ScheduleKind schedule)
    {
        torch.manual_seed(0);
        var model = new PlainArguments();
        using var pipe = PlainArguments.Pipeline.Build(model, mpi, new PipelineOptions { Schedule = schedule, StagesPerRank = mpi.Size == 2 ? 2 : null });
        torch.manual_seed(0);
        var plain = new PlainArguments();
        string who = $"[rank {mpi.Rank} stage {string.Join("+", pipe.Stages.Select(s => s.Index))} {schedule}]";
        Func<Tensor, Tensor, Tensor> loss = (o, t) => functional.mse_loss(o, t, Reduction.Sum);
        bool ok = true;
        var g = new Generator(7);
        for (int step = 0; step < Steps.Length; step++)
        {
            var (hasMask, causal, repeats, scale, mode) = Steps[step];
            var x = randn(8, 10, generator: g);
            var mask = randn(8, 16, generator: g);
            var target = randn(8, 4, generator: g);
            Tensor? given = hasMask ? mask : null;
            // Forward's arguments in its order: the tensors, then the plain ones (at step 2 the int 1 for the double 1.0).
            object?[] arguments = step == 2 ? new object?[] { x, given, causal, repeats, 1, mode } : new object?[] { x, given, causal, repeats, scale, mode };

            var output = pipe.Forward(arguments);
            var evaluated = pipe.Evaluate(arguments, target, loss);
            foreach (var p in pipe.Parameters()) p.grad?.zero_();
            var stepLoss = pipe.Step(arguments, target, loss, out var stepOutput);

            plain.zero_grad();
            Tensor expectedOutput;
            using (no_grad()) expectedOutput = plain.forward(x, given, causal, repeats, scale, mode);
            var expectedLoss = loss(plain.forward(x, given, causal, repeats, scale, mode), target);
            expectedLoss.backward();

            string at = $"{who} step {step}";
            if (pipe.IsLastStage)
            {
                ok &= Parity.Compare(at, "output", output, expectedOutput);
                ok &= Parity.Compare(at, "step output", stepOutput, expectedOutput);
            }
            ok &= Parity.Compare(at, "evaluated loss", evaluated, loss(expectedOutput, target));
            ok &= Parity.Compare(at, "loss", stepLoss, expectedLoss.detach());
            var reference = Parity.AllParameters(plain);
            int gradients = 0;
            foreach (var (name, parameter) in pipe.Stages.SelectMany(s => s.named_parameters()).Select(p => (p.name, p.parameter)))
            {
                // A layer the step did not run (repeats = 0) has no gradient in either model, or a zero one.
                var expected = reference[name].grad;
                ok &= expected is null && (parameter.grad is null || parameter.grad.count_nonzero().item<long>() == 0)
                    || Parity.Compare(at, $"grad {name}", parameter.grad, expected);
                gradients++;
            }
            Console.WriteLine($"{at} checked {gradients} gradients");
        }
        ok &= Refuses(who, "a bool argument given a string", () => pipe.Forward(randn(8, 10), null, "yes", 1, 1.0, OutputMode.Plain), "'causal' is of type Boolean");
        ok &= Refuses(who, "a double given 2.5 for an int", () => pipe.Forward(randn(8, 10), null, true, 2.5, 1.0, OutputMode.Plain), "'repeats' is of type Int32");
        ok &= Refuses(who, "the tensors alone", () => pipe.Forward(randn(8, 10), randn(8, 16)), "also takes 'causal' (Boolean)");
        // Ranks that disagree: rank 0 asks for 2 repeats, the others 1. Every rank refuses the step, none runs it.
        var disagreeing = new object?[] { randn(8, 10), null, true, mpi.Rank == 0 ? 2 : 1, 1.0, OutputMode.Plain };
        ok &= Refuses(who, "ranks given different arguments", () => pipe.Step(disagreeing, randn(8, 4), loss), "The ranks were given different plain arguments");
        return ok;
    }

    private static bool Refuses(string who, string what, Action call, string expected)
    {
        try
        {
            call();
            Console.WriteLine($"{who} {what}: accepted MISMATCH");
            return false;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            bool ok = e.Message.Contains(expected, StringComparison.Ordinal);
            // The message once (rank 0), the verdict from every rank: long lines of several ranks can interleave.
            if (who.StartsWith("[rank 0 ", StringComparison.Ordinal) || !ok) Console.WriteLine($"{who} {what}: {e.Message}");
            Console.WriteLine($"{who} {what}: refused {(ok ? "ok" : "MISMATCH")}");
            return ok;
        }
    }
}
