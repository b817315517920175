using System.Collections.Generic;
using TorchSharp;
using static TorchSharp.torch;

namespace Pippy.Runtime.Transport
{
    /// <summary>
    /// Receive buffers by dtype and shape, allocated once and reused across microbatches and steps: a buffer is taken
    /// when its receive is posted and given back when the stage is done with the value (after the microbatch's
    /// backward), so a step allocates nothing once the shapes are known.
    /// </summary>
    internal sealed class ReceiveBufferPool
    {
        private readonly Dictionary<(TensorSignature Layout, DeviceType Device, int Index), Stack<Tensor>> _free = new(new LayoutComparer());

        /// <summary>Buffers created so far (a steady state creates none).</summary>
        public int Allocated { get; private set; }

        public Tensor Take(TensorSignature layout, Device device)
        {
            if (_free.TryGetValue((layout, device.type, device.index), out var stack) && stack.Count > 0) return stack.Pop();
            Allocated++;
            // Kept outside every dispose scope: the pool owns it across steps.
            return empty(layout.Shape, layout.DType, device).DetachFromDisposeScope();
        }

        public void Return(Tensor buffer)
        {
            var key = (TensorSignature.Of(buffer.dtype, buffer.shape, requiresGrad: false), buffer.device_type, buffer.device_index);
            if (!_free.TryGetValue(key, out var stack)) _free[key] = stack = new Stack<Tensor>();
            stack.Push(buffer);
        }

        public void Clear()
        {
            foreach (var stack in _free.Values)
                foreach (var buffer in stack) buffer.Dispose();
            _free.Clear();
        }

        private sealed class LayoutComparer : IEqualityComparer<(TensorSignature Layout, DeviceType Device, int Index)>
        {
            public bool Equals((TensorSignature Layout, DeviceType Device, int Index) a, (TensorSignature Layout, DeviceType Device, int Index) b) =>
                a.Layout.SameLayout(b.Layout) && a.Device == b.Device && a.Index == b.Index;

            public int GetHashCode((TensorSignature Layout, DeviceType Device, int Index) key) => System.HashCode.Combine(key.Layout.GetHashCode(), key.Device, key.Index);
        }
    }
}
