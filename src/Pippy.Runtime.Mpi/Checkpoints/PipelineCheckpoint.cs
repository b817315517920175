using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Pippy.Runtime.Checkpoints
{
    /// <summary>What a checkpoint's index says: the model, its stages and ranks, the step, and each rank's shard file.</summary>
    public sealed record CheckpointIndex(string Model, int Stages, int Ranks, long Step, IReadOnlyList<CheckpointShard> Shards);

    /// <summary>One rank's shard file and the stages it holds.</summary>
    public sealed record CheckpointShard(int Rank, string File, IReadOnlyList<int> Stages);

    /// <summary>
    /// Checkpoints of a pipeline: each rank writes a shard (its stages' parameters and buffers in TorchSharp's module
    /// format, then its optimizer state, the step and torch's RNG state), and rank 0 then writes <c>checkpoint.json</c>,
    /// the index. Every file is written to a temporary name and renamed into place, and shards carry the step in
    /// their name, so a job that dies while saving leaves the previous checkpoint whole: the index names only
    /// complete files.
    /// </summary>
    public static class PipelineCheckpoint
    {
        public const string IndexFile = "checkpoint.json";
        private const string Magic = "PIPPY-SHARD-1";

        internal static void Save(string directory, PipelineRunner runner, StageGraph graph, OptimizerHelper? optimizer, long step)
        {
            var environment = runner.Environment;
            Directory.CreateDirectory(directory);
            string shard = $"rank{runner.PipelineRank}.step{step}.pippy";
            // Data-parallel replicas hold the same values: the first replica writes the shards.
            if (runner.DataParallelRank == 0) WriteAtomically(Path.Combine(directory, shard), stream =>
            {
                using var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
                writer.Write(Magic);
                writer.Write(runner.Stages.Count);
                foreach (var stage in runner.Stages)
                {
                    writer.Write(stage.Index);
                    stage.save(writer);
                }
                writer.Write(optimizer is not null);
                optimizer?.save_state_dict(writer);
                writer.Write(step);
                var rng = torch.get_rng_state();
                writer.Write((int)rng.NumberOfElements);
                writer.Write(rng.data<byte>().ToArray());
            });
            environment.Barrier(); // every shard is in place before the index names it
            if (environment.Rank == 0)
            {
                string? previous = File.Exists(Path.Combine(directory, IndexFile)) ? Path.Combine(directory, IndexFile) : null;
                var old = previous is null ? null : ReadIndex(directory);
                var stagesOf = Enumerable.Range(0, runner.PipelineRanks)
                    .Select(r => new CheckpointShard(r, $"rank{r}.step{step}.pippy", runner.Schedule.RankOfStage().Select((rank, s) => (rank, s)).Where(x => x.rank == r).Select(x => x.s).ToArray()))
                    .ToArray();
                var index = new CheckpointIndex(graph.ModelName, graph.StageCount, runner.PipelineRanks, step, stagesOf);
                WriteAtomically(Path.Combine(directory, IndexFile), stream => JsonSerializer.Serialize(stream, index, new JsonSerializerOptions { WriteIndented = true }));
                // The old shards are no longer named by the index: remove them.
                foreach (var file in old?.Shards.Select(s => s.File).Except(index.Shards.Select(s => s.File)) ?? Enumerable.Empty<string>())
                    File.Delete(Path.Combine(directory, file));
            }
            environment.Barrier();
        }

        internal static long Load(string directory, PipelineRunner runner, StageGraph graph, OptimizerHelper? optimizer)
        {
            var environment = runner.Environment;
            var index = ReadIndex(directory);
            if (index.Model != graph.ModelName || index.Stages != graph.StageCount || index.Ranks != runner.PipelineRanks)
                throw new InvalidOperationException(
                    $"The checkpoint in {directory} is of {index.Model} with {index.Stages} stages on {index.Ranks} ranks, but this pipeline is " +
                    $"{graph.ModelName} with {graph.StageCount} stages on {runner.PipelineRanks} ranks; load it with the same model and rank count, " +
                    "or merge it into the plain model (MergeCheckpoint) and load that.");
            var shard = index.Shards.Single(s => s.Rank == runner.PipelineRank);
            using var reader = new BinaryReader(File.OpenRead(Path.Combine(directory, shard.File)));
            // Everything is checked before anything is loaded: a shard of another model or shape changes nothing.
            Validate(reader, shard.File, runner);
            reader.BaseStream.Position = 0;
            reader.ReadString();
            int stages = reader.ReadInt32();
            for (int i = 0; i < stages; i++)
            {
                int index_ = reader.ReadInt32();
                var stage = runner.Stages.SingleOrDefault(s => s.Index == index_)
                    ?? throw new InvalidDataException($"{shard.File} holds stage {index_}, which this rank does not run.");
                stage.load(reader);
            }
            bool hasOptimizer = reader.ReadBoolean();
            if (hasOptimizer && optimizer is not null) optimizer.load_state_dict(reader);
            else if (hasOptimizer) throw new InvalidOperationException($"{shard.File} holds optimizer state: pass the optimizer to LoadCheckpoint to restore it.");
            long step = reader.ReadInt64();
            int rngLength = reader.ReadInt32();
            torch.set_rng_state(torch.tensor(reader.ReadBytes(rngLength), dtype: ScalarType.Byte));
            return step;
        }

        /// <summary>
        /// Reads a shard's stage sections without loading them and compares each tensor with this rank's stages: the
        /// first missing, extra or differently shaped tensor is an error that names it.
        /// </summary>
        private static void Validate(BinaryReader reader, string file, PipelineRunner runner)
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
        }

        /// <summary>
        /// Writes the stages of a checkpoint into <paramref name="model"/> (through stages that share its submodules)
        /// and saves the plain model in TorchSharp's format at <paramref name="output"/>: one file the model loads
        /// in one process with <c>model.load(output)</c>.
        /// </summary>
        public static void Merge(string directory, nn.Module model, Func<int, PipelineStage> createStage, string output)
        {
            var index = ReadIndex(directory);
            foreach (var shard in index.Shards)
            {
                using var reader = new BinaryReader(File.OpenRead(Path.Combine(directory, shard.File)));
                if (reader.ReadString() != Magic) throw new InvalidDataException($"{shard.File} is not a Pippy checkpoint shard.");
                int stages = reader.ReadInt32();
                for (int i = 0; i < stages; i++) createStage(reader.ReadInt32()).load(reader);
            }
            WriteAtomically(output, stream => model.save(stream));
        }

        public static CheckpointIndex ReadIndex(string directory)
        {
            string path = Path.Combine(directory, IndexFile);
            if (!File.Exists(path)) throw new FileNotFoundException($"No checkpoint in {directory}: {IndexFile} is missing.", path);
            return JsonSerializer.Deserialize<CheckpointIndex>(File.ReadAllText(path))
                ?? throw new InvalidDataException($"{path} is not a checkpoint index.");
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
