using System;
using System.Linq;
using Pippy.Runtime;
using Pippy.Runtime.Transport;
using static TorchSharp.torch;

namespace ParityApp;

/// <summary>What the transport checks compare: messages received against the tensors sent, bit for bit.</summary>
internal static class ReceivedTensors
{
    /// <summary>True when every message holds the expected tensor (same dtype, shape and values) or, where none was sent, none; a line per difference.</summary>
    public static bool Match(ReceivedTensor[] received, Tensor?[] expected, int round, string who = "")
    {
        bool ok = received.Length == expected.Length;
        for (int k = 0; k < expected.Length && ok; k++)
        {
            var (want, got) = (expected[k], received[k].Value);
            bool same = want is null ? got is null
                : got is not null && got.dtype == want.dtype && got.shape.SequenceEqual(want.shape) && got.eq(want).all().item<bool>();
            if (!same) Console.WriteLine($"{who}MISMATCH round {round} message {k}: expected {want?.ToString() ?? "no tensor"}, got {got?.ToString() ?? "no tensor"}");
            ok &= same;
        }
        return ok;
    }

    /// <summary>Prints the verdict of one check with this rank's number.</summary>
    public static bool Check(PipelineEnvironment mpi, bool condition, string what)
    {
        Console.WriteLine($"[rank {mpi.Rank}] {(condition ? "ok" : "MISMATCH")}: {what}");
        return condition;
    }
}
