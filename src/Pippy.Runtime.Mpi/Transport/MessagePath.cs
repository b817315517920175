namespace Pippy.Runtime.Transport
{
    /// <summary>The path a message's memory takes, as the fourth field of its header says (learned with its shape).</summary>
    internal enum MessagePath
    {
        /// <summary>MPI (the memory itself, or a host-staged copy of a CUDA tensor).</summary>
        Mpi = 0,

        /// <summary>A shared-memory slot of this machine (<see cref="SharedSlots"/>); MPI carries a notice.</summary>
        SharedMemory = 1,

        /// <summary>Copied device to device into the receiver's mapped buffer (<see cref="CudaIpcChannel"/>); MPI carries a notice.</summary>
        CudaIpc = 2,
    }
}
