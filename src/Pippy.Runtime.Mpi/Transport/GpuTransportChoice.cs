using System;
using System.Collections.Generic;
using TorchSharp;

namespace Pippy.Runtime.Transport
{
    /// <summary>How a CUDA tensor's memory reaches another rank.</summary>
    internal enum GpuTransport
    {
        /// <summary>The tensors are on the CPU: shared memory or MPI, no GPU path at all.</summary>
        NotOnGpu,

        /// <summary>The receiver's buffer is mapped into the sender (cudaIpcOpenMemHandle), which copies device to device.</summary>
        CudaIpc,

        /// <summary>MPI reads and writes device memory itself (MPIX_Query_cuda_support said so).</summary>
        CudaAwareMpi,

        /// <summary>Through pinned host buffers on both ends, and MPI between them.</summary>
        HostStaging,
    }

    /// <summary>What the choice of <see cref="GpuTransport"/> for one pair of ranks depends on; each end computes it alike.</summary>
    /// <param name="Device">Where this rank's tensors are.</param>
    /// <param name="MpiCudaAware">MPIX_Query_cuda_support answered 1.</param>
    /// <param name="SameHost">The peer runs on this machine (same host and boot).</param>
    /// <param name="CudaRuntime">The CUDA runtime library found (libcudart.so.12, ...), or null when none loads.</param>
    /// <param name="IpcWorks">Both ends exported and opened each other's probe memory and event handle.</param>
    /// <param name="Override">The value of <see cref="GpuTransportChoice.Variable"/> (null or empty: choose).</param>
    /// <param name="LearnedShapes">Messages' shapes are learned (PipelineOptions.LearnShapes): IPC buffers are made for learned shapes.</param>
    internal readonly record struct GpuTransportInputs(DeviceType Device, bool MpiCudaAware, bool SameHost, string? CudaRuntime, bool IpcWorks, string? Override = null, bool LearnedShapes = true);

    /// <summary>
    /// The choice of a GPU transport as a pure function, so every branch is tested without a GPU. Without an override:
    /// a CUDA-aware MPI when there is one (it is what MPICH builds with CUDA are for, on one host or several), else CUDA
    /// IPC with a peer on this host when the CUDA runtime is found and the probe handles opened both ways, else host
    /// staging, with the reason. An override that cannot be honoured is an error naming why, not a silent fallback: a
    /// benchmark that asked for IPC must not measure host staging.
    /// </summary>
    internal static class GpuTransportChoice
    {
        /// <summary>ipc, mpi or host: forces the path (every CUDA message between ranks).</summary>
        public const string Variable = "PIPPY_GPU_TRANSPORT";

        public static (GpuTransport Path, string Reason) Choose(GpuTransportInputs inputs)
        {
            string? forced = Normalize(inputs.Override);
            if (forced is not (null or "host" or "mpi" or "ipc"))
                throw new ArgumentException($"{Variable}={inputs.Override} is not a GPU transport: use ipc, mpi or host (or unset it).");
            if (inputs.Device != DeviceType.CUDA)
                return (GpuTransport.NotOnGpu, forced is null
                    ? $"tensors on the {inputs.Device}"
                    : $"tensors on the {inputs.Device}; {Variable}={forced} applies to CUDA tensors only");
            string runtime = inputs.CudaRuntime is null ? "no CUDA runtime library (libcudart) found" : $"{inputs.CudaRuntime} found";
            string mpi = inputs.MpiCudaAware ? "MPI is CUDA-aware" : "MPI not CUDA-aware";
            switch (forced)
            {
                case "host":
                    return (GpuTransport.HostStaging, $"{Variable}=host");
                case "mpi":
                    if (!inputs.MpiCudaAware)
                        throw new InvalidOperationException(
                            $"{Variable}=mpi asks MPI to read device memory, but this MPI is not CUDA-aware (MPIX_Query_cuda_support answered 0 or is missing; " +
                            $"Debian's MPICH is built without CUDA). Use an MPICH built with CUDA, or set {Variable}=ipc (ranks of one machine) or host.");
                    return (GpuTransport.CudaAwareMpi, $"{Variable}=mpi, {mpi}");
                case "ipc":
                    if (!inputs.LearnedShapes)
                        throw new InvalidOperationException(
                            $"{Variable}=ipc, but PipelineOptions.LearnShapes is off: CUDA IPC receives into buffers made for each message's learned shape. " +
                            $"Turn LearnShapes on, or set {Variable}=host.");
                    if (!inputs.SameHost)
                        throw new InvalidOperationException(
                            $"{Variable}=ipc, but the peer runs on another machine: CUDA IPC maps memory between processes of one machine only. " +
                            $"Set {Variable}=host (or mpi with a CUDA-aware MPI), or unset it to let each pair of ranks choose.");
                    if (inputs.CudaRuntime is null) throw new InvalidOperationException(CudaIpcMessages.RuntimeMissing(Variable));
                    if (!inputs.IpcWorks)
                        throw new InvalidOperationException(
                            $"{Variable}=ipc, but the ranks could not open each other's CUDA IPC handles (a device or driver without IPC, " +
                            $"ranks in containers that do not share the GPU's IPC namespace, or MIG). Set {Variable}=host.");
                    return (GpuTransport.CudaIpc, $"{Variable}=ipc, same host, {runtime}, {mpi}");
            }
            if (inputs.MpiCudaAware) return (GpuTransport.CudaAwareMpi, $"{mpi}; {Variable}=ipc to use CUDA IPC instead");
            if (inputs.SameHost && inputs.CudaRuntime is not null && inputs.IpcWorks && inputs.LearnedShapes) return (GpuTransport.CudaIpc, $"same host, {runtime}, {mpi}");
            var why = new List<string> { mpi };
            if (!inputs.SameHost) why.Add("peer on another host");
            else if (inputs.CudaRuntime is null) why.Add(runtime);
            else if (!inputs.IpcWorks) why.Add("CUDA IPC handles did not open between the ranks");
            else why.Add("shapes not learned (PipelineOptions.LearnShapes is off)");
            return (GpuTransport.HostStaging, string.Join(", ", why));
        }

        /// <summary>The path's name as the start-up line says it.</summary>
        public static string Describe(GpuTransport path) => path switch
        {
            GpuTransport.CudaIpc => "CUDA IPC",
            GpuTransport.CudaAwareMpi => "CUDA-aware MPI",
            GpuTransport.HostStaging => "host staging",
            _ => "CPU (shared memory or MPI)",
        };

        private static string? Normalize(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim().ToLowerInvariant();
    }
}
