#!/usr/bin/env bash
# Runs the pipeline benchmark on 2 ranks (one torch thread each) and writes bench/results/latest.md and
# bench/results/efficiency.svg. Takes about ten minutes; run it on an otherwise idle machine and compare the ratios of one run.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build bench/PipelineBench -c Release -v q
export OMP_NUM_THREADS=1
bench=bench/PipelineBench/bin/Release/net10.0/PipelineBench.dll
results=bench/results
mkdir -p "$results"
rm -f "$results"/progress.*.txt "$results"/memory.*.txt
# What moves MPI messages while the ranks compute: nothing (MPI progresses inside MPI calls), MPICH's progress thread, or ours.
for progress in none mpich poll; do
  PIPPY_PROGRESS=$progress mpiexec.mpich -n 2 dotnet "$bench" progress "$results"
done
mpiexec.mpich -n 1 dotnet "$bench" memory "$results" plain
mpiexec.mpich -n 2 dotnet "$bench" memory "$results" lazy
rm -f "$results"/accumulation.md
mpiexec.mpich -n 2 dotnet "$bench" accumulation "$results"
mpiexec.mpich -n 2 dotnet "$bench" pipeline "$results"
# Ranks that outnumber the cores (issue 18): the seed quickstart on 3 ranks, samples/Gpt's model on 4 (seed.Sleep.md, gpt.md).
mpiexec.mpich -n 3 dotnet "$bench" seed "$results"
mpiexec.mpich -n 4 dotnet "$bench" gpt "$results"
# Peak memory with and without activation recomputation (activations.rows.txt: one row per job).
rm -f "$results"/activations.rows.txt
mpiexec.mpich -n 1 dotnet "$bench" activations "$results"
for schedule in GPipe OneFOneB; do
  for recompute in off on blocks; do
    mpiexec.mpich -n 4 dotnet "$bench" activations "$results" "$schedule" "$recompute"
  done
done
# AdamW's state per rank with and without sharding across the data-parallel replicas (optimizer.rows.txt).
rm -f "$results"/optimizer.rows.txt
for state in full sharded; do
  mpiexec.mpich -n 4 dotnet "$bench" optimizer "$results" "$state"
done
