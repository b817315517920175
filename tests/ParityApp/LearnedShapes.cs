using System;
using System.Linq;
using ParityApp.Models;
using Pippy.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace ParityApp;

/// <summary>Receives posted in advance into reused buffers once the shapes are learned, checked against the plain model step by step.</summary>
public static class LearnedShapes
{
    /// <summary>
    /// Steps with one batch shape, then another: prints per step the buffers created and the messages sent with and
    /// without a header, and compares each step's loss and gradients with the plain model's.
    /// </summary>
    public static bool Steps(PipelineEnvironment mpi)
    {
        torch.manual_seed(0);
        using var pipe = OneFOneBOnTwo.Pipeline.Build(new OneFOneBOnTwo(), mpi, new PipelineOptions { PrintPlan = false });
        torch.manual_seed(0);
        var reference = new OneFOneBOnTwo();
        var referenceParameters = Parity.AllParameters(reference);
        bool ok = true;
        int[] rows = { 14, 14, 14, 10, 10 };
        for (int step = 0; step < rows.Length; step++)
        {
            var g = new Generator(50 + (ulong)step);
            var (x, y) = (randn(rows[step], 6, generator: g), randn(rows[step], 6, generator: g));
            foreach (var p in pipe.Parameters()) p.grad?.zero_();
            var loss = pipe.Step(x, y, (o, t) => nn.functional.mse_loss(o, t, nn.Reduction.Sum));
            reference.zero_grad();
            var referenceLoss = nn.functional.mse_loss(reference.forward(x), y, nn.Reduction.Sum);
            referenceLoss.backward();
            var s = pipe.LastStep;
            Console.WriteLine($"[rank {mpi.Rank}] step {step} ({rows[step]} rows): buffers created {s.ReceiveBuffersAllocated}, shared slots created {s.SharedSlotsCreated}, messages with header {s.MessagesWithHeader}, memory only {s.MessagesMemoryOnly}, host staging buffers {s.HostStagingBuffers}");
            string who = $"[rank {mpi.Rank}]";
            ok &= Parity.Compare(who, $"step {step} loss", loss, referenceLoss.detach());
            foreach (var (name, parameter) in pipe.Stages.SelectMany(st => st.named_parameters()))
                ok &= Parity.Compare(who, $"step {step} gradient {name}", parameter.grad!, referenceParameters[name].grad!);
        }
        // A forward-only pass between steps learns its own messages (no gradients, no requires-grad flags).
        var output = pipe.Forward(randn(14, 6));
        if (pipe.IsLastStage && output!.shape[0] != 14) ok = false;
        return ok;
    }

    /// <summary>A boundary whose shape follows the data: an error naming the value with learned shapes, fine without.</summary>
    public static bool DataDependent(PipelineEnvironment mpi, bool learn)
    {
        torch.manual_seed(0);
        using var pipe = ShapeByData.Pipeline.Build(new ShapeByData(), mpi, new PipelineOptions { PrintPlan = false, LearnShapes = learn });
        foreach (float keep in new[] { 3f, 2f })
        {
            var x = randn(4, 4);
            x[0, 0] = keep;
            var loss = pipe.Step(x, zeros(1), (o, t) => o.sum());
            if (mpi.Rank == 0) Console.WriteLine($"kept {keep} rows: loss {loss.item<float>():F3}");
        }
        return true;
    }
}
