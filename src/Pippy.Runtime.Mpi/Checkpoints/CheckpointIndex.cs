using System.Collections.Generic;

namespace Pippy.Runtime.Checkpoints
{
    /// <summary>
    /// What a checkpoint's index says: the model, its stages and ranks, the step, each rank's shard file, the files of
    /// an optimizer state sharded across data-parallel replicas (none otherwise), and the index's own checksum (XxHash3
    /// of the file with this value's digits as zeros).
    /// </summary>
    public sealed record CheckpointIndex(
        string Model, int Stages, int Ranks, long Step, IReadOnlyList<CheckpointShard> Shards,
        IReadOnlyList<CheckpointOptimizerShard>? OptimizerShards = null, string? Checksum = null);

    /// <summary>One replica's share of a pipeline rank's optimizer state (ShardOptimizerState), with its length and checksum.</summary>
    public sealed record CheckpointOptimizerShard(int Rank, int Replica, int Replicas, string File, long Length, string Checksum);

    /// <summary>One rank's shard file, the stages it holds, and its length and checksum (XxHash3) as saved.</summary>
    public sealed record CheckpointShard(int Rank, string File, IReadOnlyList<int> Stages, long? Length = null, string? Checksum = null);
}
