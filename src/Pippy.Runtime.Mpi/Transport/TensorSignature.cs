using System;
using System.Linq;
using static TorchSharp.torch;

namespace Pippy.Runtime.Transport
{
    /// <summary>
    /// What a message carries: a tensor's dtype, shape and requires-grad flag, or no tensor at all (a gradient that
    /// does not exist). Learned on the first step for each message of a step, so that later steps send only the
    /// tensor's memory and receive it into a buffer posted in advance.
    /// </summary>
    internal readonly struct TensorSignature : IEquatable<TensorSignature>
    {
        private readonly long[]? _shape;

        private TensorSignature(ScalarType dtype, long[]? shape, bool requiresGrad)
        {
            DType = dtype;
            _shape = shape;
            RequiresGrad = requiresGrad;
        }

        public static TensorSignature None => default;

        public static TensorSignature Of(Tensor? tensor) =>
            tensor is null ? None : new TensorSignature(tensor.dtype, tensor.shape, tensor.requires_grad);

        public static TensorSignature Of(ScalarType dtype, long[] shape, bool requiresGrad) => new(dtype, shape, requiresGrad);

        public bool IsNone => _shape is null;
        public ScalarType DType { get; }
        public long[] Shape => _shape ?? Array.Empty<long>();
        public bool RequiresGrad { get; }
        public long Elements => Shape.Aggregate(1L, (a, b) => a * b);

        /// <summary>Same dtype and shape: one buffer serves both.</summary>
        public bool SameLayout(TensorSignature other) => IsNone == other.IsNone && DType == other.DType && Shape.AsSpan().SequenceEqual(other.Shape);

        public bool Equals(TensorSignature other) => SameLayout(other) && RequiresGrad == other.RequiresGrad;
        public override bool Equals(object? obj) => obj is TensorSignature other && Equals(other);

        public override int GetHashCode()
        {
            var hash = new HashCode();
            hash.Add(IsNone);
            hash.Add(DType);
            foreach (long d in Shape) hash.Add(d);
            return hash.ToHashCode();
        }

        public override string ToString() => IsNone ? "no tensor" : $"{DType} [{string.Join(", ", Shape)}]{(RequiresGrad ? " requiring grad" : "")}";
    }
}
