#!/usr/bin/env bash
# Runs the pipeline benchmark on 2 ranks (one torch thread each) and writes bench/results/latest.md and
# bench/results/efficiency.svg. Takes about a minute; run it on an otherwise idle machine and compare the ratios of one run.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build bench/PipelineBench -c Release -v q
export OMP_NUM_THREADS=1
mpiexec.mpich -n 2 dotnet bench/PipelineBench/bin/Release/net10.0/PipelineBench.dll pipeline bench/results
