using System;
using System.IO;
using System.Linq;
using TorchSharp.Modules;

namespace Pippy.Runtime.Checkpoints
{
    /// <summary>
    /// One data-parallel replica's share of a pipeline rank's optimizer state (ZeRO-1, <see cref="OptimizerShard"/>) in
    /// a checkpoint: the replica count and the replica's index, the shapes of the parameters it owns (so that a load
    /// into another sharding is refused by name rather than mixing states up), then the optimizer's state in
    /// TorchSharp's format. The pipeline rank's model shard holds the parameters; these files hold only the state.
    /// </summary>
    internal static class OptimizerShardFile
    {
        private const string Magic = "PIPPY-OPTIMIZER-SHARD-1";

        public static string Name(int rank, int replica, long step) => $"rank{rank}.replica{replica}.step{step}.optimizer.pippy";

        public static void Write(BinaryWriter writer, OptimizerShard shard, int replica, OptimizerHelper optimizer)
        {
            writer.Write(Magic);
            writer.Write(shard.Replicas);
            writer.Write(replica);
            writer.Write(shard.Parameters.Count);
            foreach (var parameter in shard.Parameters)
            {
                writer.Write(parameter.shape.Length);
                foreach (long size in parameter.shape) writer.Write(size);
            }
            optimizer.save_state_dict(writer);
        }

        /// <summary>Reads the header and checks it against this replica's shard; leaves the reader at the optimizer's state.</summary>
        public static void Check(BinaryReader reader, string file, OptimizerShard shard, int replica)
        {
            if (reader.ReadString() != Magic) throw new InvalidDataException($"{file} is not a Pippy optimizer shard.");
            int replicas = reader.ReadInt32(), savedReplica = reader.ReadInt32();
            if (replicas != shard.Replicas || savedReplica != replica)
                throw new InvalidDataException(
                    $"{file} is replica {savedReplica}'s share of an optimizer state sharded across {replicas} replicas, but this is replica {replica} of {shard.Replicas}: " +
                    $"load it with DataParallel = {replicas} and ShardOptimizerState, or merge it into the plain model (MergeCheckpoint) and load that. Nothing was loaded.");
            int count = reader.ReadInt32();
            var shapes = Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, reader.ReadInt32()).Select(_ => reader.ReadInt64()).ToArray()).ToArray();
            bool same = count == shard.Parameters.Count && shapes.Zip(shard.Parameters, (saved, p) => saved.SequenceEqual(p.shape)).All(x => x);
            if (!same)
                throw new InvalidDataException(
                    $"{file} holds optimizer state for {count} parameters of other shapes than this replica's share ({shard.Parameters.Count} parameters): " +
                    "the checkpoint is of another model or another sharding. Nothing was loaded.");
        }
    }
}
