#!/usr/bin/env bash
# Packs the GPU check for a machine that has an NVIDIA GPU and PyTorch (with CUDA) but neither .NET, MPICH nor
# TorchSharp-cuda: GpuCheck built without a libtorch package (-p:TorchBackend=external: TorchSharp's native glue then
# loads the PyTorch install's libtorch through LD_LIBRARY_PATH), this machine's .NET runtime, and its MPICH (Debian 12)
# with the libraries it loads. Writes .gpu/{app,dotnet,mpich}.tar.xz (about 40 MB); run-with-pytorch.sh runs them there.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.gpu
rm -rf "$out" && mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
dotnet publish bench/gpu/GpuCheck -c Release -r linux-x64 --self-contained false -p:TorchBackend=external -o "$stage/app" -v q
dotnet_root=$(dirname "$(readlink -f "$(command -v dotnet)")")
(cd "$dotnet_root" && tar cf - dotnet host shared/Microsoft.NETCore.App) | xz -T0 -3 > "$out/dotnet.tar.xz"
mkdir -p "$stage/mpich/bin" "$stage/mpich/lib/ucx"
cp /usr/bin/mpiexec.hydra /usr/bin/hydra_pmi_proxy "$stage/mpich/bin/"
cp -L /usr/lib/x86_64-linux-gnu/libmpich.so.12 "$stage/mpich/lib/"
cp -L /usr/lib/x86_64-linux-gnu/ucx/*.so.0 "$stage/mpich/lib/ucx/"
# Every library these load, except the C library's own (the other machine has a newer one).
for f in "$stage"/mpich/lib/libmpich.so.12 "$stage"/mpich/bin/* "$stage"/mpich/lib/ucx/*.so.0; do
  ldd "$f" | awk '/=>/ {print $1, $3}'
done | sort -u | grep -Ev '^(libc|libm|libpthread|libdl|librt|libresolv|ld-linux)[.-]' | while read -r name path; do
  cp -L "$path" "$stage/mpich/lib/$name"
done
(cd "$stage" && tar cf - mpich) | xz -T0 -6 > "$out/mpich.tar.xz"
(cd "$stage" && tar cf - app) | xz -T0 -6 > "$out/app.tar.xz"
ls -la "$out"
