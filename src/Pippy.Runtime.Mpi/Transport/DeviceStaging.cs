using TorchSharp;
using static TorchSharp.torch;

namespace Pippy.Runtime.Transport
{
    /// <summary>
    /// How a tensor's memory reaches MPI. CPU tensors go as they are. CUDA tensors go as device pointers when the MPI
    /// library reports CUDA support (MPIX_Query_cuda_support), after the device has finished writing them; otherwise
    /// through pinned host buffers (copied there before a send, and from there after a receive), reused like receive
    /// buffers. The host path passed bench/gpu's check on an H200 (PyTorch's libtorch, MPICH without CUDA); the
    /// device-pointer path has not run (it needs a CUDA-aware MPICH). The tests exercise the host path on the CPU by
    /// forcing it (<see cref="ForceHostStaging"/>).
    /// </summary>
    internal sealed class DeviceStaging
    {
        private readonly ReceiveBufferPool _host = new();

        public DeviceStaging(bool mpiCudaAware, bool forceHostStaging = false)
        {
            MpiCudaAware = mpiCudaAware;
            ForceHostStaging = forceHostStaging;
        }

        public bool MpiCudaAware { get; }

        /// <summary>Stage every tensor through host buffers, CPU tensors too: how the tests run the GPU path without a GPU.</summary>
        public bool ForceHostStaging { get; }

        /// <summary>Host staging buffers created so far.</summary>
        public int Allocated => _host.Allocated;

        /// <summary>True when MPI can read and write this device's memory itself.</summary>
        public bool Direct(Device device) =>
            !ForceHostStaging && (device.type == DeviceType.CPU || (device.type == DeviceType.CUDA && MpiCudaAware));

        /// <summary>The tensor whose memory MPI sends: <paramref name="data"/> itself, or a host copy of it (give it back with <see cref="Release"/>).</summary>
        public Tensor ForSend(Tensor data)
        {
            if (Direct(data.device)) return Finished(data);
            var host = Take(data.dtype, data.shape);
            host.copy_(data);
            return host;
        }

        /// <summary>
        /// The memory a collective reads and writes: <paramref name="data"/> itself where MPI can use it, else a host
        /// copy of it (not pooled: the caller copies the result back to the device and drops it).
        /// </summary>
        public Tensor ForCollective(Tensor data) => Direct(data.device) ? Finished(data) : data.to(DeviceType.CPU, copy: true);

        /// <summary>Waits until the device has finished writing <paramref name="data"/>: its kernels run asynchronously.</summary>
        private static Tensor Finished(Tensor data)
        {
            if (data.device_type == DeviceType.CUDA) cuda.synchronize();
            return data;
        }

        /// <summary>The memory MPI receives into for a value that is to land in <paramref name="deviceBuffer"/>.</summary>
        public Tensor ReceiveTarget(Tensor deviceBuffer) =>
            Direct(deviceBuffer.device) ? deviceBuffer : Take(deviceBuffer.dtype, deviceBuffer.shape);

        /// <summary>After the receive: copies a host-staged value to its device buffer and gives the host buffer back.</summary>
        public void Land(Tensor target, Tensor deviceBuffer)
        {
            if (ReferenceEquals(target, deviceBuffer)) return;
            using (no_grad()) deviceBuffer.copy_(target);
            _host.Return(target);
        }

        /// <summary>Gives back a host buffer of <see cref="ForSend"/> once its send has completed.</summary>
        public void Release(Tensor sent, Tensor original)
        {
            if (!ReferenceEquals(sent, original)) _host.Return(sent);
        }

        private Tensor Take(ScalarType dtype, long[] shape)
        {
            var buffer = _host.Take(TensorSignature.Of(dtype, shape, requiresGrad: false), CPU);
            // Page-locked memory needs the CUDA runtime; without it (the CPU tests) the buffer stays pageable.
            if (buffer.is_pinned() || !cuda.is_available()) return buffer;
            var pinned = buffer.pin_memory().DetachFromDisposeScope();
            buffer.Dispose();
            return pinned;
        }

        public void Clear() => _host.Clear();
    }
}
