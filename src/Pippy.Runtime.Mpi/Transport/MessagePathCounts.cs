namespace Pippy.Runtime.Transport
{
    /// <summary>
    /// Tensor messages by the path their memory took: through a shared-memory slot (ranks of one machine), through
    /// MPI (ranks on different machines, or where shared memory is off), or device to device through CUDA IPC. Counts
    /// messages that carried memory only.
    /// </summary>
    internal readonly record struct MessagePathCounts(int ViaSharedMemory, long BytesViaSharedMemory, int ViaMpi, long BytesViaMpi, int ViaCudaIpc = 0, long BytesViaCudaIpc = 0)
    {
        /// <summary>These counts with one more message of <paramref name="bytes"/> on <paramref name="path"/>.</summary>
        public MessagePathCounts Add(MessagePath path, long bytes) => path switch
        {
            MessagePath.SharedMemory => this with { ViaSharedMemory = ViaSharedMemory + 1, BytesViaSharedMemory = BytesViaSharedMemory + bytes },
            MessagePath.CudaIpc => this with { ViaCudaIpc = ViaCudaIpc + 1, BytesViaCudaIpc = BytesViaCudaIpc + bytes },
            _ => this with { ViaMpi = ViaMpi + 1, BytesViaMpi = BytesViaMpi + bytes },
        };

        /// <summary>What was counted between <paramref name="before"/> and <paramref name="after"/>.</summary>
        public static MessagePathCounts operator -(MessagePathCounts after, MessagePathCounts before) =>
            new(after.ViaSharedMemory - before.ViaSharedMemory, after.BytesViaSharedMemory - before.BytesViaSharedMemory,
                after.ViaMpi - before.ViaMpi, after.BytesViaMpi - before.BytesViaMpi,
                after.ViaCudaIpc - before.ViaCudaIpc, after.BytesViaCudaIpc - before.BytesViaCudaIpc);
    }
}
