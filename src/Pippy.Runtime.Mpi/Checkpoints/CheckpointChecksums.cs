using System;
using System.Buffers;
using System.Globalization;
using System.IO;
using System.IO.Hashing;
using System.Text;
using System.Text.Json;

namespace Pippy.Runtime.Checkpoints
{
    /// <summary>
    /// The checksums of a checkpoint: XxHash3 (64-bit) of every shard's bytes, recorded in the index with the shard's
    /// length, and of the index itself, recorded in its own last property (<c>"Checksum"</c>), hashed with that value's
    /// 16 hex digits as zeros, so the index stays plain JSON. Written as <c>xxh3:</c> and 16 lowercase hex digits.
    /// </summary>
    internal static class CheckpointChecksums
    {
        public const string Prefix = "xxh3:";
        private const int Digits = 16;

        /// <summary>What the index's checksum property holds while the index is hashed.</summary>
        public static readonly string Placeholder = Prefix + new string('0', Digits);

        public static string Format(ulong hash) => Prefix + hash.ToString("x16", CultureInfo.InvariantCulture);

        /// <summary>The length and checksum of a file, read once from start to end.</summary>
        public static (long Length, string Checksum) OfFile(string path)
        {
            var hash = new XxHash3();
            long length = 0;
            var buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
            try
            {
                using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);
                int read;
                while ((read = stream.Read(buffer, 0, buffer.Length)) > 0)
                {
                    hash.Append(buffer.AsSpan(0, read));
                    length += read;
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
            return (length, Format(hash.GetCurrentHashAsUInt64()));
        }

        /// <summary>
        /// The index as written: <paramref name="json"/> (serialized with <see cref="Placeholder"/> as its checksum) with
        /// the placeholder's digits replaced by the checksum of those bytes.
        /// </summary>
        public static byte[] Seal(byte[] json)
        {
            int digits = ChecksumDigits(json) ?? throw new InvalidOperationException("The checkpoint index has no checksum property to fill in.");
            ulong hash = XxHash3.HashToUInt64(json);
            Encoding.ASCII.GetBytes(hash.ToString("x16", CultureInfo.InvariantCulture), json.AsSpan(digits, Digits));
            return json;
        }

        /// <summary>
        /// Checks an index's bytes against the checksum they record. Returns null when they agree, else what is wrong;
        /// <paramref name="missing"/> is true when the index records no checksum at all (saved before checksums).
        /// </summary>
        public static string? Verify(byte[] json, out bool missing)
        {
            missing = false;
            int? at;
            try
            {
                at = ChecksumDigits(json);
            }
            catch (JsonException e)
            {
                return $"it cannot be read as a checkpoint index ({e.Message})";
            }
            if (at is not int digits)
            {
                missing = true;
                return "it records no checksum";
            }
            string recorded = Prefix + Encoding.ASCII.GetString(json, digits, Digits);
            var zeroed = (byte[])json.Clone();
            zeroed.AsSpan(digits, Digits).Fill((byte)'0');
            string actual = Format(XxHash3.HashToUInt64(zeroed));
            return actual == recorded ? null : $"its checksum is {actual} but it records {recorded}";
        }

        /// <summary>
        /// Where the 16 hex digits of the index's top-level <c>"Checksum"</c> value start in <paramref name="json"/>, or
        /// null when it has none. Throws <see cref="JsonException"/> when the bytes are not JSON.
        /// </summary>
        private static int? ChecksumDigits(byte[] json)
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow });
            int? found = null;
            while (reader.Read())
            {
                if (reader.TokenType != JsonTokenType.PropertyName || reader.CurrentDepth != 1 || !reader.ValueTextEquals("Checksum")) continue;
                reader.Read();
                // A plain string of exactly "xxh3:" and 16 hex digits (no escapes): anything else is no checksum of ours.
                if (reader.TokenType != JsonTokenType.String || reader.ValueIsEscaped || reader.ValueSpan.Length != Prefix.Length + Digits
                    || !reader.ValueSpan.StartsWith(Encoding.ASCII.GetBytes(Prefix)) || !IsHex(reader.ValueSpan.Slice(Prefix.Length)))
                    throw new JsonException("its \"Checksum\" is not \"xxh3:\" and 16 hex digits");
                // The token of a string starts at its opening quote.
                found = checked((int)reader.TokenStartIndex) + 1 + Prefix.Length;
            }
            return found;
        }

        private static bool IsHex(ReadOnlySpan<byte> digits)
        {
            foreach (byte b in digits)
                if (!(b is >= (byte)'0' and <= (byte)'9' or >= (byte)'a' and <= (byte)'f')) return false;
            return true;
        }
    }

    /// <summary>A write-only stream that passes every byte on to another stream and hashes it on the way (XxHash3).</summary>
    internal sealed class HashingStream(Stream inner) : Stream
    {
        private readonly XxHash3 _hash = new();

        public long Written { get; private set; }

        public ulong Hash => _hash.GetCurrentHashAsUInt64();

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => Written;
        public override long Position { get => Written; set => throw new NotSupportedException("A checkpoint shard is written from start to end."); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException("A checkpoint shard is written from start to end.");
        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            inner.Write(buffer);
            _hash.Append(buffer);
            Written += buffer.Length;
        }

        public override void WriteByte(byte value) => Write(new ReadOnlySpan<byte>(in value));
    }
}
