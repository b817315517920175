using System;
using System.Collections.Generic;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using Pippy.Runtime.Transport;
using MpiU = MPI.Unsafe;

namespace Pippy.Runtime.Execution
{
    /// <summary>
    /// Checks, before the first step, that every rank built the same model: the name, dtype and shape of every
    /// parameter and buffer of every stage. Ranks that built different models (another configuration file, other
    /// constructor arguments) would otherwise send values of one shape to a stage written for another and fail deep
    /// inside a forward; here each such rank names its first tensor that differs from rank 0's, and every rank stops.
    /// </summary>
    internal static unsafe class ModelAgreement
    {
        /// <summary>One line per tensor of every stage, in stage order: what must be equal on every rank.</summary>
        public static string[] Describe(IEnumerable<PipelineStage> allStages) =>
            allStages.SelectMany(stage =>
                    stage.named_parameters().Select(p => (Kind: "parameter", p.name, Tensor: (TorchSharp.torch.Tensor)p.parameter))
                        .Concat(stage.named_buffers().Select(b => (Kind: "buffer", b.name, Tensor: b.buffer)))
                        .Select(t => $"stage {stage.Index} {t.Kind} {t.name}: {StageInputs.Shape(t.Tensor)}"))
                .ToArray();

        /// <summary>
        /// Compares this rank's description with rank 0's over <paramref name="communicator"/> (every rank of the job).
        /// Throws on every rank when any rank differs.
        /// </summary>
        public static void Check(string modelName, string[] description, int communicator, int rank, int size, TimeSpan timeout)
        {
            const string what = "the check that every rank built the same model";
            var text = Encoding.UTF8.GetBytes(string.Join("\n", description));
            var hash = SHA256.HashData(text);
            var rootHash = (byte[])hash.Clone();
            fixed (byte* root = rootHash)
                Collectives.Broadcast((IntPtr)root, rootHash.Length, MpiU.MPI_BYTE, 0, communicator, timeout, what);
            var differs = new int[size];
            var differing = new int[size];
            differs[rank] = hash.AsSpan().SequenceEqual(rootHash) ? 0 : 1;
            fixed (int* mine = differs)
            fixed (int* all = differing)
                Collectives.Allreduce((IntPtr)mine, (IntPtr)all, size, MpiU.MPI_INT, MpiU.MPI_SUM, communicator, timeout, what);
            var ranks = Enumerable.Range(0, size).Where(r => differing[r] != 0).ToArray();
            if (ranks.Length == 0) return;

            // Rank 0's description to the first rank that differs, which names its first tensor that differs; every
            // rank then stops with that same message, whichever of them ends the job first.
            int length = text.Length;
            Collectives.Broadcast((IntPtr)(&length), 1, MpiU.MPI_INT, 0, communicator, timeout, what);
            var rootText = rank == 0 ? text : new byte[length];
            fixed (byte* buffer = rootText)
                Collectives.Broadcast((IntPtr)buffer, length, MpiU.MPI_BYTE, 0, communicator, timeout, what);
            var difference = Encoding.UTF8.GetBytes(rank == ranks[0] ? FirstDifference(rank, description, Encoding.UTF8.GetString(rootText).Split('\n')) : "");
            int differenceLength = difference.Length;
            Collectives.Broadcast((IntPtr)(&differenceLength), 1, MpiU.MPI_INT, ranks[0], communicator, timeout, what);
            if (rank != ranks[0]) difference = new byte[differenceLength];
            fixed (byte* buffer = difference)
                Collectives.Broadcast((IntPtr)buffer, differenceLength, MpiU.MPI_BYTE, ranks[0], communicator, timeout, what);
            throw new InvalidOperationException(
                $"{(ranks.Length == 1 ? $"Rank {ranks[0]}" : $"Ranks {string.Join(", ", ranks)}")} built a different {modelName} than rank 0 " +
                $"({Encoding.UTF8.GetString(difference)}); nothing was run. Every rank must build the same model: the same constructor arguments and " +
                "configuration on every rank (only values may differ: the pipeline broadcasts the replicated ones).");
        }

        private static string FirstDifference(int rank, string[] mine, string[] root)
        {
            for (int i = 0; i < Math.Min(mine.Length, root.Length); i++)
                if (mine[i] != root[i])
                    return $"rank {rank} has {mine[i]}, rank 0 has {root[i]}";
            return mine.Length > root.Length
                ? $"rank {rank} has {mine.Length - root.Length} more tensor(s), the first {mine[root.Length]}"
                : $"rank 0 has {root.Length - mine.Length} more tensor(s), the first {root[mine.Length]}";
        }
    }
}
