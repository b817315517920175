using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using static TorchSharp.torch;

namespace Pippy.Runtime.Materialization
{
    /// <summary>
    /// Reads chosen tensors from a file in TorchSharp's module format (what <c>module.save</c> writes: the entry count,
    /// then per entry its name, dtype, shape and raw bytes, integers in LEB128) and seeks past the others, so a rank
    /// reads its own stages of a large model without holding the rest. Written here because TorchSharp's reader
    /// (<c>module.load</c>) needs a module that holds every tensor it reads.
    /// </summary>
    internal static class ModelFile
    {
        public static void Read(string path, IReadOnlyList<MaterializedTensor> tensors)
        {
            if (!File.Exists(path))
                throw new FileNotFoundException($"WeightInitialization.FromFile: no model file at {path}. Save one with model.save(path), or merge a pipeline checkpoint (Pipeline.MergeCheckpoint).", path);
            var wanted = new Dictionary<string, MaterializedTensor>(StringComparer.Ordinal);
            foreach (var tensor in tensors)
                foreach (var name in tensor.Names) wanted[name] = tensor;
            var loaded = new HashSet<MaterializedTensor>();

            using var reader = new BinaryReader(File.OpenRead(path));
            try
            {
                long entries = Decode(reader);
                for (long i = 0; i < entries; i++)
                {
                    var (name, dtype, shape, bytes) = EntryHeader(reader);
                    if (!wanted.TryGetValue(name, out var target) || loaded.Contains(target))
                    {
                        reader.BaseStream.Seek(bytes, SeekOrigin.Current);
                        continue;
                    }
                    var value = target.Tensor;
                    if (dtype != value.dtype || !shape.SequenceEqual(value.shape))
                        throw new InvalidDataException(
                            $"{path} holds '{name}' as {dtype} [{string.Join(", ", shape)}], but the model's is {value.dtype} [{string.Join(", ", value.shape)}]: " +
                            "the file is of another model or configuration.");
                    using (no_grad())
                    {
                        if (value.device_type == TorchSharp.DeviceType.CPU && value.is_contiguous()) value.ReadBytesFromStream(reader.BaseStream);
                        else
                        {
                            using var staging = empty(shape, dtype, CPU);
                            staging.ReadBytesFromStream(reader.BaseStream);
                            value.copy_(staging);
                        }
                    }
                    loaded.Add(target);
                }
            }
            catch (EndOfStreamException e)
            {
                throw new InvalidDataException($"{path} ends in the middle of an entry: it is not a complete TorchSharp model file.", e);
            }
            var missing = tensors.Where(t => !loaded.Contains(t)).ToArray();
            if (missing.Length > 0)
                throw new InvalidDataException(
                    $"{path} has no {string.Join(", ", missing.Take(5).Select(t => $"'{t.Name}'"))}{(missing.Length > 5 ? $" and {missing.Length - 5} more" : "")}: " +
                    "the file is of another model, or was saved before these were added.");
        }

        /// <summary>
        /// The entries of one module section (what <c>module.save</c> wrote at the reader's position): each name, dtype
        /// and shape, seeking past the data. Leaves the reader after the section.
        /// </summary>
        public static List<(string Name, ScalarType DType, long[] Shape)> Skim(BinaryReader reader)
        {
            var entries = new List<(string, ScalarType, long[])>();
            long count = Decode(reader);
            for (long i = 0; i < count; i++)
            {
                var (name, dtype, shape, bytes) = EntryHeader(reader);
                reader.BaseStream.Seek(bytes, SeekOrigin.Current);
                entries.Add((name, dtype, shape));
            }
            return entries;
        }

        /// <summary>One entry up to its data: name, dtype, shape, and how many bytes of data follow.</summary>
        private static (string Name, ScalarType DType, long[] Shape, long Bytes) EntryHeader(BinaryReader reader)
        {
            string name = reader.ReadString();
            var dtype = (ScalarType)Decode(reader);
            var shape = new long[Decode(reader)];
            for (int d = 0; d < shape.Length; d++) shape[d] = Decode(reader);
            return (name, dtype, shape, shape.Aggregate(1L, (a, b) => a * b) * ElementSize(dtype));
        }

        private static long Decode(BinaryReader reader)
        {
            long result = 0;
            for (int shift = 0; ; shift += 7)
            {
                if (shift > 63) throw new InvalidDataException("A length in the model file is not a valid LEB128 number.");
                long b = reader.ReadByte();
                result |= (b & 0x7f) << shift;
                if ((b & 0x80) == 0) return result;
            }
        }

        private static long ElementSize(ScalarType dtype)
        {
            using var probe = empty(new long[] { 0 }, dtype, CPU);
            return probe.ElementSize;
        }
    }
}
