using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text.Json;
using Pippy.Runtime.Communication;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Pippy.Runtime.Checkpoints
{
    /// <summary>
    /// Checkpoints of a pipeline: each rank writes a shard (its stages' parameters and buffers in TorchSharp's module
    /// format, then its optimizer state, the step and torch's RNG state), and rank 0 then writes <c>checkpoint.json</c>,
    /// the index, which records each shard's length and checksum and ends with its own checksum. Every file is written
    /// to a temporary name and renamed into place, and shards carry the step in their name, so a job that dies while
    /// saving leaves the previous checkpoint whole: the index names only complete files. Loading checks the index and
    /// every rank's shard before any rank changes anything, and every rank refuses together when one finds damage.
    /// </summary>
    public static class PipelineCheckpoint
    {
        public const string IndexFile = "checkpoint.json";
        private const string Magic = "PIPPY-SHARD-1";
        private const string NothingLoaded = "Nothing was loaded: restore the file or load an earlier checkpoint.";
        private const string NothingMerged = "Nothing was merged: restore the file or merge an earlier checkpoint.";
        private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

        private static string ShardName(int rank, long step) => $"rank{rank}.step{step}.pippy";

        internal static void Save(string directory, PipelineRunner runner, StageGraph graph, OptimizerHelper? optimizer, long step)
        {
            var environment = runner.Environment;
            var world = runner.World;
            // An optimizer state sharded across replicas: each replica writes its share to a file of its own.
            var sharded = optimizer is not null ? runner.ShardedOptimizer : null;
            int replicas = runner.DataParallelSize;
            // Each shard's length and checksum, in its pipeline rank's pair of slots, then each optimizer share's in
            // its (rank, replica) pair: rank 0 gathers them for the index.
            var mine = new ulong[2 * runner.PipelineRanks * (sharded is null ? 1 : 1 + replicas)];
            int OptimizerSlot(int rank, int replica) => 2 * (runner.PipelineRanks + rank * replicas + replica);
            Exception? failure = null;
            try
            {
                Directory.CreateDirectory(directory);
                if (sharded is not null)
                    WriteAtomically(Path.Combine(directory, OptimizerShardFile.Name(runner.PipelineRank, runner.DataParallelRank, step)), stream =>
                    {
                        using var hashing = new HashingStream(stream);
                        using (var writer = new BinaryWriter(hashing, System.Text.Encoding.UTF8, leaveOpen: true))
                            OptimizerShardFile.Write(writer, sharded, runner.DataParallelRank, optimizer!);
                        mine[OptimizerSlot(runner.PipelineRank, runner.DataParallelRank)] = (ulong)hashing.Written;
                        mine[OptimizerSlot(runner.PipelineRank, runner.DataParallelRank) + 1] = hashing.Hash;
                    });
                // Data-parallel replicas hold the same values: the first replica writes the shards.
                if (runner.DataParallelRank == 0) WriteAtomically(Path.Combine(directory, ShardName(runner.PipelineRank, step)), stream =>
                {
                    // Hashed on the way to the file: the shard is read once, by nobody.
                    using var hashing = new HashingStream(stream);
                    using (var writer = new BinaryWriter(hashing, System.Text.Encoding.UTF8, leaveOpen: true))
                    {
                        writer.Write(Magic);
                        writer.Write(runner.Stages.Count);
                        foreach (var stage in runner.Stages)
                        {
                            writer.Write(stage.Index);
                            stage.save(writer);
                        }
                        writer.Write(optimizer is not null && sharded is null);
                        if (sharded is null) optimizer?.save_state_dict(writer);
                        writer.Write(step);
                        var rng = torch.get_rng_state();
                        writer.Write((int)rng.NumberOfElements);
                        writer.Write(rng.data<byte>().ToArray());
                    }
                    mine[2 * runner.PipelineRank] = (ulong)hashing.Written;
                    mine[2 * runner.PipelineRank + 1] = hashing.Hash;
                });
            }
            catch (Exception e)
            {
                failure = new IOException($"Rank {environment.Rank} could not write its checkpoint shard in {directory}: {e.Message} The index was not changed: it still names the previous checkpoint.", e);
            }
            // Every shard is in place before the index names it (and a rank that could not write stops every rank).
            FailureAgreement.Agree(failure, world, "saving a checkpoint (every rank's shard written)");
            var sums = new ulong[mine.Length];
            world.Allreduce<ulong>(mine, sums, ReduceOperation.BitwiseOr, "saving a checkpoint (the shards' checksums to rank 0)");
            failure = null;
            if (environment.Rank == 0)
            {
                try
                {
                    var old = TryReadIndexUnchecked(directory);
                    var stagesOf = runner.Schedule.RankOfStage();
                    var shards = Enumerable.Range(0, runner.PipelineRanks)
                        .Select(r => new CheckpointShard(r, ShardName(r, step), Enumerable.Range(0, stagesOf.Count).Where(s => stagesOf[s] == r).ToArray(),
                            (long)sums[2 * r], CheckpointChecksums.Format(sums[2 * r + 1])))
                        .ToArray();
                    var optimizerShards = sharded is null ? null : Enumerable.Range(0, runner.PipelineRanks)
                        .SelectMany(r => Enumerable.Range(0, replicas).Select(d => new CheckpointOptimizerShard(r, d, replicas, OptimizerShardFile.Name(r, d, step),
                            (long)sums[OptimizerSlot(r, d)], CheckpointChecksums.Format(sums[OptimizerSlot(r, d) + 1]))))
                        .ToArray();
                    var index = new CheckpointIndex(graph.ModelName, graph.StageCount, runner.PipelineRanks, step, shards, optimizerShards, CheckpointChecksums.Placeholder);
                    WriteIndex(directory, index);
                    // The old shards are no longer named by the index: remove them.
                    foreach (var file in Files(old).Except(Files(index)))
                        File.Delete(Path.Combine(directory, file));
                }
                catch (Exception e)
                {
                    failure = new IOException($"Rank 0 could not write the checkpoint index in {directory}: {e.Message}", e);
                }
            }
            FailureAgreement.Agree(failure, world, "saving a checkpoint (the index written)");
        }

        internal static long Load(string directory, PipelineRunner runner, StageGraph graph, OptimizerHelper? optimizer)
        {
            var environment = runner.Environment;
            // Everything is checked on every rank before anything is loaded on any: the index and this rank's shard
            // against their checksums, then the shard's tensors against this rank's stages. A refusal on any rank is
            // a refusal on every rank, so no rank is left half-loaded.
            string? path = null, optimizerPath = null;
            Exception? failure = null;
            try
            {
                var index = ReadIndex(directory, environment.Rank, NothingLoaded);
                if (index.Model != graph.ModelName || index.Stages != graph.StageCount || index.Ranks != runner.PipelineRanks)
                    throw new InvalidOperationException(
                        $"The checkpoint in {directory} is of {index.Model} with {index.Stages} stages on {index.Ranks} ranks, but this pipeline is " +
                        $"{graph.ModelName} with {graph.StageCount} stages on {runner.PipelineRanks} ranks; load it with the same model and rank count, " +
                        "or merge it into the plain model (MergeCheckpoint) and load that.");
                var shard = index.Shards.SingleOrDefault(s => s.Rank == runner.PipelineRank)
                    ?? throw new InvalidDataException($"The checkpoint index {Path.GetFullPath(Path.Combine(directory, IndexFile))} names no shard of rank {runner.PipelineRank}. Nothing was loaded.");
                path = VerifyShard(directory, shard, NothingLoaded);
                using (var reader = new BinaryReader(File.OpenRead(path)))
                    Validate(reader, shard.File, runner, optimizer, index.OptimizerShards is { Count: > 0 });
                if (optimizer is not null) optimizerPath = CheckOptimizerShard(directory, index, runner);
            }
            catch (Exception e)
            {
                failure = e;
            }
            FailureAgreement.Agree(failure, runner.World, "the check, before loading a checkpoint, that every rank can load its shard");

            using (var reader = new BinaryReader(File.OpenRead(path!)))
            {
                reader.ReadString();
                int stages = reader.ReadInt32();
                for (int i = 0; i < stages; i++)
                {
                    int index_ = reader.ReadInt32();
                    runner.Stages.Single(s => s.Index == index_).load(reader);
                }
                bool hasOptimizer = reader.ReadBoolean();
                if (hasOptimizer) optimizer!.load_state_dict(reader);
                if (optimizerPath is not null)
                {
                    using var shardReader = new BinaryReader(File.OpenRead(optimizerPath));
                    OptimizerShardFile.Check(shardReader, optimizerPath, runner.ShardedOptimizer!, runner.DataParallelRank);
                    optimizer!.load_state_dict(shardReader);
                }
                long step = reader.ReadInt64();
                int rngLength = reader.ReadInt32();
                torch.set_rng_state(torch.tensor(reader.ReadBytes(rngLength), dtype: ScalarType.Byte));
                return step;
            }
        }

        /// <summary>
        /// Checks a shard's length and checksum against what the index records; returns its full path. Throws
        /// <see cref="InvalidDataException"/> naming the file and its rank when they differ.
        /// </summary>
        private static string VerifyShard(string directory, CheckpointShard shard, string nothing)
        {
            string path = Path.GetFullPath(Path.Combine(directory, shard.File));
            string what = $"Checkpoint shard {path} (rank {shard.Rank})";
            if (shard.Length is not long expectedLength || shard.Checksum is not string expected)
                throw new InvalidDataException($"{what} has no checksum in the index {Path.Combine(directory, IndexFile)}. {nothing}");
            if (!File.Exists(path)) throw new InvalidDataException($"{what} is missing. {nothing}");
            var (length, actual) = CheckpointChecksums.OfFile(path);
            string? problem =
                length != expectedLength ? string.Create(CultureInfo.InvariantCulture, $"it has {length:N0} bytes but the index records {expectedLength:N0}")
                : actual != expected ? $"its checksum is {actual} but the index records {expected}"
                : null;
            if (problem is not null)
                throw new InvalidDataException($"{what} is damaged: {problem}; it was changed or cut after it was saved. {nothing}");
            return path;
        }

        /// <summary>
        /// Reads a shard's stage sections without loading them and compares each tensor with this rank's stages: the
        /// first missing, extra or differently shaped tensor is an error that names it, and so is optimizer state
        /// without an optimizer to take it.
        /// </summary>
        /// <summary>Every file an index names: the ranks' shards and the optimizer's shares.</summary>
        private static IEnumerable<string> Files(CheckpointIndex? index) =>
            index is null ? Enumerable.Empty<string>() : index.Shards.Select(s => s.File).Concat(index.OptimizerShards?.Select(s => s.File) ?? Enumerable.Empty<string>());

        /// <summary>
        /// For a load with an optimizer: this replica's share of a sharded optimizer state, checked against the index and
        /// this replica's shard; null when the state is in the rank's shard. A sharded state and an unsharded optimizer
        /// (or the other way round) are refused with what to do.
        /// </summary>
        private static string? CheckOptimizerShard(string directory, CheckpointIndex index, PipelineRunner runner)
        {
            var shard = runner.ShardedOptimizer;
            if (index.OptimizerShards is not { Count: > 0 } shares)
            {
                if (shard is null) return null;
                throw new InvalidOperationException(
                    $"The checkpoint in {directory} holds an optimizer state that is not sharded, but this pipeline's optimizer state is sharded across {shard.Replicas} replicas " +
                    "(ShardOptimizerState): load it into an optimizer of every parameter (without ShardOptimizerState), or merge it into the plain model (MergeCheckpoint) and load that. Nothing was loaded.");
            }
            int replicas = shares[0].Replicas;
            if (shard is null || shard.Replicas != replicas)
                throw new InvalidOperationException(
                    $"The checkpoint in {directory} holds an optimizer state sharded across {replicas} data-parallel replicas, but this pipeline's is " +
                    $"{(shard is null ? "not sharded" : $"sharded across {shard.Replicas}")}: load it with DataParallel = {replicas} and ShardOptimizerState, " +
                    "or merge it into the plain model (MergeCheckpoint) and load that. Nothing was loaded.");
            var mine = shares.SingleOrDefault(s => s.Rank == runner.PipelineRank && s.Replica == runner.DataParallelRank)
                ?? throw new InvalidDataException($"The checkpoint index {Path.GetFullPath(Path.Combine(directory, IndexFile))} names no optimizer share of rank {runner.PipelineRank}, replica {runner.DataParallelRank}. Nothing was loaded.");
            string path = VerifyShard(directory, new CheckpointShard(mine.Rank, mine.File, Array.Empty<int>(), mine.Length, mine.Checksum), NothingLoaded);
            using var reader = new BinaryReader(File.OpenRead(path));
            OptimizerShardFile.Check(reader, path, shard, runner.DataParallelRank);
            return path;
        }

        private static void Validate(BinaryReader reader, string file, PipelineRunner runner, OptimizerHelper? optimizer, bool optimizerSharded)
        {
            if (reader.ReadString() != Magic) throw new InvalidDataException($"{file} is not a Pippy checkpoint shard.");
            int stages = reader.ReadInt32();
            for (int i = 0; i < stages; i++)
            {
                int index = reader.ReadInt32();
                var stage = runner.Stages.SingleOrDefault(s => s.Index == index)
                    ?? throw new InvalidDataException($"{file} holds stage {index}, which this rank does not run.");
                var expected = stage.state_dict();
                var saved = Materialization.ModelFile.Skim(reader);
                foreach (var (name, dtype, shape) in saved)
                {
                    if (!expected.TryGetValue(name, out var tensor))
                        throw new InvalidDataException($"{file}: stage {index} of the checkpoint has '{name}', which this model's stage {index} does not: the checkpoint is of another model. Nothing was loaded.");
                    if (tensor.dtype != dtype || !tensor.shape.SequenceEqual(shape))
                        throw new InvalidDataException(
                            $"{file}: '{name}' of stage {index} was saved as {dtype} [{string.Join(", ", shape)}] but is {tensor.dtype} [{string.Join(", ", tensor.shape)}] here: " +
                            "the checkpoint is of another configuration of the model. Nothing was loaded.");
                }
                var missing = expected.Keys.Except(saved.Select(e => e.Name)).FirstOrDefault();
                if (missing is not null)
                    throw new InvalidDataException($"{file}: stage {index} of the checkpoint has no '{missing}': the checkpoint is of another model. Nothing was loaded.");
            }
            if ((reader.ReadBoolean() || optimizerSharded) && optimizer is null)
                throw new InvalidOperationException($"{file} holds optimizer state: pass the optimizer to LoadCheckpoint to restore it. Nothing was loaded.");
        }

        /// <summary>
        /// Writes the stages of a checkpoint into <paramref name="model"/> (through stages that share its submodules)
        /// and saves the plain model in TorchSharp's format at <paramref name="output"/>: one file the model loads
        /// in one process with <c>model.load(output)</c>. The index and every shard are checked against their
        /// checksums first: a damaged checkpoint changes neither the model nor <paramref name="output"/>.
        /// </summary>
        public static void Merge(string directory, nn.Module model, Func<int, PipelineStage> createStage, string output)
        {
            var index = ReadIndex(directory, rank: null, NothingMerged);
            var paths = index.Shards.Select(shard => VerifyShard(directory, shard, NothingMerged)).ToArray();
            foreach (var path in paths)
            {
                using var reader = new BinaryReader(File.OpenRead(path));
                if (reader.ReadString() != Magic) throw new InvalidDataException($"{path} is not a Pippy checkpoint shard.");
                int stages = reader.ReadInt32();
                for (int i = 0; i < stages; i++) createStage(reader.ReadInt32()).load(reader);
            }
            WriteAtomically(output, stream => model.save(stream));
        }

        /// <summary>Reads a checkpoint's index and checks it against its own checksum.</summary>
        public static CheckpointIndex ReadIndex(string directory) => ReadIndex(directory, rank: null, "");

        private static CheckpointIndex ReadIndex(string directory, int? rank, string nothing)
        {
            string path = Path.GetFullPath(Path.Combine(directory, IndexFile));
            if (!File.Exists(path)) throw new FileNotFoundException($"No checkpoint in {directory}: {IndexFile} is missing.", path);
            var bytes = File.ReadAllBytes(path);
            string what = $"Checkpoint index {path}{(rank is int r ? $" (read by rank {r})" : "")}";
            if (CheckpointChecksums.Verify(bytes, out bool missing) is string problem)
                throw new InvalidDataException(missing
                    ? $"{what} records no checksums: the checkpoint was saved before Pippy wrote them, or its index was edited.{(nothing.Length > 0 ? $" {nothing[..nothing.IndexOf(':')]}." : "")} " +
                      $"If you trust its files as they are now, add checksums once with PipelineCheckpoint.AddChecksums(\"{directory}\") (in one process) and load it again."
                    : $"{what} is damaged: {problem}; it was changed or cut after it was saved. {nothing}".TrimEnd());
            return Deserialize(bytes, path);
        }

        /// <summary>
        /// Adds checksums to a checkpoint saved before Pippy wrote them (call it in one process, not on every rank): the
        /// index then records each shard's length and checksum as the files are now, and its own checksum. Only for files
        /// you trust: damage done before this call is not found afterwards. A checkpoint that has checksums is left as
        /// it is; one whose index has a checksum that does not match is refused.
        /// </summary>
        public static void AddChecksums(string directory)
        {
            string path = Path.GetFullPath(Path.Combine(directory, IndexFile));
            if (!File.Exists(path)) throw new FileNotFoundException($"No checkpoint in {directory}: {IndexFile} is missing.", path);
            var bytes = File.ReadAllBytes(path);
            var problem = CheckpointChecksums.Verify(bytes, out bool missing);
            if (problem is null) return;
            if (!missing) throw new InvalidDataException($"Checkpoint index {path} is damaged: {problem}. AddChecksums adds checksums only to an index that has none.");
            var index = Deserialize(bytes, path);
            var shards = index.Shards.Select(shard =>
            {
                var (length, checksum) = CheckpointChecksums.OfFile(Path.Combine(directory, shard.File));
                return shard with { Length = length, Checksum = checksum };
            }).ToArray();
            var optimizerShards = index.OptimizerShards?.Select(share =>
            {
                var (length, checksum) = CheckpointChecksums.OfFile(Path.Combine(directory, share.File));
                return share with { Length = length, Checksum = checksum };
            }).ToArray();
            WriteIndex(directory, index with { Shards = shards, OptimizerShards = optimizerShards, Checksum = CheckpointChecksums.Placeholder });
        }

        private static void WriteIndex(string directory, CheckpointIndex index) =>
            WriteAtomically(Path.Combine(directory, IndexFile), stream => stream.Write(CheckpointChecksums.Seal(JsonSerializer.SerializeToUtf8Bytes(index, Indented))));

        private static CheckpointIndex Deserialize(byte[] bytes, string path)
        {
            try
            {
                return JsonSerializer.Deserialize<CheckpointIndex>(bytes) ?? throw new InvalidDataException($"{path} is not a checkpoint index.");
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{path} is not a checkpoint index: {e.Message}", e);
            }
        }

        /// <summary>The index as it is, unchecked, or null when there is none or it cannot be read (saving: which old shards to remove).</summary>
        private static CheckpointIndex? TryReadIndexUnchecked(string directory)
        {
            string path = Path.Combine(directory, IndexFile);
            try
            {
                return File.Exists(path) ? Deserialize(File.ReadAllBytes(path), path) : null;
            }
            catch (InvalidDataException)
            {
                return null;
            }
        }

        private static void WriteAtomically(string path, Action<Stream> write)
        {
            string temporary = path + ".tmp";
            using (var stream = File.Create(temporary))
            {
                write(stream);
                if (stream.CanWrite) stream.Flush(flushToDisk: true); // on disk before the rename makes it the checkpoint
            }
            // Test hook (tests/Runtime/ReliabilityTests): hold the written temporary file here, so a test can kill the job mid-save.
            if (System.Environment.GetEnvironmentVariable("PIPPY_TEST_PAUSE_BEFORE_RENAME") == "1")
            {
                Console.WriteLine($"[pippy] paused before renaming {Path.GetFileName(temporary)}");
                System.Threading.Thread.Sleep(TimeSpan.FromSeconds(60));
            }
            File.Move(temporary, path, overwrite: true);
        }
    }
}
