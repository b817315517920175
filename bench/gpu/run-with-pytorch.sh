#!/usr/bin/env bash
# Runs the GPU check packed by pack-for-pytorch.sh on a machine with an NVIDIA GPU and PyTorch (python3 -c 'import
# torch' works there): unpacks .NET, MPICH and GpuCheck, puts PyTorch's libtorch (and the CUDA libraries it brings) on
# LD_LIBRARY_PATH, and runs GpuCheck on 2 ranks, then on 4 (all on GPU 0 when there is one GPU). Exit status 0 means
# "PASS gpu check" on both.
set -uo pipefail
cd "$(dirname "$0")/../.."
bundle=${1:-.gpu}
work=$(mktemp -d)
mkdir -p "$work/dotnet"
tar xJf "$bundle/dotnet.tar.xz" -C "$work/dotnet" && tar xJf "$bundle/mpich.tar.xz" -C "$work" && tar xJf "$bundle/app.tar.xz" -C "$work" || exit 3
torchlib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))') || exit 3
python3 -c 'import torch; print("PyTorch", torch.__version__, "CUDA", torch.version.cuda, torch.cuda.get_device_name(0))'
export DOTNET_ROOT="$work/dotnet" DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
export PATH="$work/dotnet:$work/mpich/bin:$PATH"
export LD_LIBRARY_PATH="$work/mpich/lib:$torchlib:${LD_LIBRARY_PATH:-}"
export UCX_MODULE_DIR="$work/mpich/lib/ucx"
# CUDA IPC maps blocks of libtorch's caching allocator; expandable segments (cuMemMap) cannot be shared that way.
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:False}
overall=0
for ranks in 2 4; do
  status=1
  # UCX picks its transports; where shared memory is refused (sandboxes), TCP over loopback is the fallback.
  for tls in "" "tcp,self"; do
    echo "== $ranks ranks, UCX_TLS=${tls:-default}"
    UCX_TLS=${tls:-all} timeout 240 mpiexec.hydra -n $ranks dotnet "$work/app/GpuCheck.dll"
    status=$?
    [ $status -eq 0 ] && break
  done
  [ $status -ne 0 ] && overall=$status
done
exit $overall
