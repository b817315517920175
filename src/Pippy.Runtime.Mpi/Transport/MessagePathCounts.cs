namespace Pippy.Runtime.Transport
{
    /// <summary>
    /// Tensor messages by the path their memory took: through a shared-memory slot (ranks of one machine) or through
    /// MPI (ranks on different machines, or where shared memory is off). Counts messages that carried memory only.
    /// </summary>
    internal readonly record struct MessagePathCounts(int ViaSharedMemory, long BytesViaSharedMemory, int ViaMpi, long BytesViaMpi)
    {
        /// <summary>These counts with one more message of <paramref name="bytes"/> on the path <paramref name="shared"/> says.</summary>
        public MessagePathCounts Add(bool shared, long bytes) => shared
            ? this with { ViaSharedMemory = ViaSharedMemory + 1, BytesViaSharedMemory = BytesViaSharedMemory + bytes }
            : this with { ViaMpi = ViaMpi + 1, BytesViaMpi = BytesViaMpi + bytes };

        /// <summary>What was counted between <paramref name="before"/> and <paramref name="after"/>.</summary>
        public static MessagePathCounts operator -(MessagePathCounts after, MessagePathCounts before) =>
            new(after.ViaSharedMemory - before.ViaSharedMemory, after.BytesViaSharedMemory - before.BytesViaSharedMemory,
                after.ViaMpi - before.ViaMpi, after.BytesViaMpi - before.BytesViaMpi);
    }
}
