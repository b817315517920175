#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU (CUDA 12) and MPICH: builds with TorchSharp-cuda and runs on 2 ranks,
# then on 4 (all sharing GPU 0 where there is one).
# Where TorchSharp-cuda cannot be restored but PyTorch is installed, use pack-for-pytorch.sh and run-with-pytorch.sh.
# Prints one line per check and "PASS gpu check" at the end of each run (exit status 0), in a few minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
# CUDA IPC maps blocks of libtorch's caching allocator; expandable segments (cuMemMap) cannot be shared that way.
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:False}
dotnet build bench/gpu/GpuCheck -c Release -p:TorchBackend=cuda -v q
for ranks in 2 4; do
  echo "== $ranks ranks"
  mpiexec.mpich -n $ranks dotnet bench/gpu/GpuCheck/bin/Release/net10.0/GpuCheck.dll
done
