using System;
using System.Collections.Generic;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using Pippy.Runtime.Communication;

namespace Pippy.Runtime.Execution
{
    /// <summary>
    /// Checks, before the first step, that every rank built the same model: the name, dtype and shape of every
    /// parameter and buffer of every stage. Ranks that built different models (another configuration file, other
    /// constructor arguments) would otherwise send values of one shape to a stage written for another and fail deep
    /// inside a forward; here each such rank names its first tensor that differs from rank 0's, and every rank stops.
    /// </summary>
    internal static class ModelAgreement
    {
        /// <summary>One line per tensor of every stage, in stage order: what must be equal on every rank.</summary>
        public static string[] Describe(IEnumerable<PipelineStage> allStages) =>
            allStages.SelectMany(stage =>
                    stage.named_parameters().Select(p => (Kind: "parameter", p.name, Tensor: (TorchSharp.torch.Tensor)p.parameter))
                        .Concat(stage.named_buffers().Select(b => (Kind: "buffer", b.name, Tensor: b.buffer)))
                        .Select(t => $"stage {stage.Index} {t.Kind} {t.name}: {StageInputs.Shape(t.Tensor)}"))
                .ToArray();

        /// <summary>
        /// Compares this rank's description with rank 0's over <paramref name="world"/> (every rank of the job).
        /// Throws on every rank when any rank differs.
        /// </summary>
        public static void Check(string modelName, string[] description, MpiCommunicator world)
        {
            const string what = "the check that every rank built the same model";
            int rank = world.Rank, size = world.Size;
            var text = Encoding.UTF8.GetBytes(string.Join("\n", description));
            var hash = SHA256.HashData(text);
            var rootHash = (byte[])hash.Clone();
            world.Broadcast<byte>(rootHash, 0, what);
            var differs = new int[size];
            var differing = new int[size];
            differs[rank] = hash.AsSpan().SequenceEqual(rootHash) ? 0 : 1;
            world.Allreduce<int>(differs, differing, ReduceOperation.Sum, what);
            var ranks = Enumerable.Range(0, size).Where(r => differing[r] != 0).ToArray();
            if (ranks.Length == 0) return;

            // Rank 0's description to the first rank that differs, which names its first tensor that differs; every
            // rank then stops with that same message, whichever of them ends the job first.
            var length = new[] { text.Length };
            world.Broadcast<int>(length, 0, what);
            var rootText = rank == 0 ? text : new byte[length[0]];
            world.Broadcast<byte>(rootText, 0, what);
            var difference = Encoding.UTF8.GetBytes(rank == ranks[0] ? FirstDifference(rank, description, Encoding.UTF8.GetString(rootText).Split('\n')) : "");
            var differenceLength = new[] { difference.Length };
            world.Broadcast<int>(differenceLength, ranks[0], what);
            if (rank != ranks[0]) difference = new byte[differenceLength[0]];
            world.Broadcast<byte>(difference, ranks[0], what);
            // Every rank throws the same message: the first rank that differs reports it (FailureAgreement).
            throw FailureAgreement.Mark(new InvalidOperationException(
                $"{(ranks.Length == 1 ? $"Rank {ranks[0]}" : $"Ranks {string.Join(", ", ranks)}")} built a different {modelName} than rank 0 " +
                $"({Encoding.UTF8.GetString(difference)}); nothing was run. Every rank must build the same model: the same constructor arguments and " +
                "configuration on every rank (only values may differ: the pipeline broadcasts the replicated ones)."), ranks[0]);
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
