using System;
using static TorchSharp.torch;

namespace Pippy.Runtime.Transport
{
    /// <summary>A posted receive: learned (straight into <see cref="Buffer"/>) or waiting for its header first.</summary>
    internal sealed record PendingReceive(int Source, int Tag, Device Device, TensorSignature? Known, Tensor? Header, Tensor? Buffer, Tensor? Target, int Request)
    {
        /// <summary>Where a shared-memory message's notice (which slot holds it) lands.</summary>
        public Tensor? Notice { get; init; }

        /// <summary>The notice is a CUDA IPC copy's (the buffer is this rank's own, written by the sender), not a shared slot's.</summary>
        public bool ViaCudaIpc { get; init; }

        /// <summary>What the message is, for the watchdog's message ("the value 'x' from stage 0 on rank 0 (microbatch 3)").</summary>
        public string What { get; init; } = $"the message with tag {Tag} from rank {Source}";
    }

    /// <summary>A received tensor (null when the sender had none; a buffer of the pool otherwise) and whether the sender's tensor required a gradient.</summary>
    internal readonly record struct ReceivedTensor(Tensor? Value, bool RequiresGrad);

    /// <summary>A message's tensor differs from what was learned for it on earlier steps.</summary>
    internal sealed class SignatureChangedException(TensorSignature learned, TensorSignature now)
        : InvalidOperationException($"it was {learned} in earlier steps and is {now} now")
    {
        public TensorSignature Learned { get; } = learned;
        public TensorSignature Now { get; } = now;
    }
}
