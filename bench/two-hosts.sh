#!/usr/bin/env bash
# The send path's bandwidth between two "hosts" (tools/two-hosts: network namespaces on this machine joined by a veth
# pair) beside the same between two ranks of one host, and writes bench/results/two-hosts.md. As root; about a minute.
# The veth is a virtual link inside one kernel, not a network: what it measures is MPI's TCP path through the kernel
# on this machine's two cores, a floor for the software, not what a real network gives.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build bench/PipelineBench -c Release -v q
cores=$(getconf _NPROCESSORS_ONLN)
load=$(cut -d' ' -f1-3 /proc/loadavg)
export OMP_NUM_THREADS=1
bench=bench/PipelineBench/bin/Release/net10.0/PipelineBench.dll
out=bench/results/two-hosts.md
export PIPPY_HOSTS="pb$$"
trap 'tools/two-hosts/teardown.sh' EXIT
tools/two-hosts/setup.sh

sent_by_a() { ip netns exec "${PIPPY_HOSTS}A" cat /sys/class/net/pp0/statistics/tx_bytes; }
table_head='| MiB | path | send, median (ms) | send GiB/s | memcpy, median (ms) | memcpy GiB/s | send / memcpy bandwidth (median of rounds) | fastest / fastest |
| --- | --- | --- | --- | --- | --- | --- | --- |'
# Rank 0 on hostA, rank 1 on hostB; extra hydra options (UCX's transports) as arguments. Prints the table's rows, then
# the bytes that left hostA over the veth. With UCX's TCP transport MPI_Finalize can hang after the work is done
# (MPICH 4.0.2 with UCX 1.13.1, see docs/cluster.md): the rows are printed by then, and the job is ended after 4 minutes.
across() {
  local before after rows
  before=$(sent_by_a)
  rows=$(timeout -s KILL 240 ip netns exec "${PIPPY_HOSTS}A" mpiexec.mpich -launcher ssh -launcher-exec "$PWD/tools/two-hosts/launch.sh" \
    -hosts hostA:1,hostB:1 -iface pp0 -n 2 -genv UCX_NET_DEVICES pp0 "$@" dotnet "$bench" bandwidth | grep '^| [0-9]' || true)
  after=$(sent_by_a)
  echo "$rows"
  echo "bytes over the veth: $((after - before)) bytes left hostA over the veth during this run"
}
in_host=$(mpiexec.mpich -n 2 dotnet "$bench" bandwidth | grep '^| [0-9]')
over_tcp=$(across -genv UCX_TLS tcp,self)
over_default=$(across)

{
  echo "# Send bandwidth between two hosts on one machine (issue 20)"
  echo
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`bench/two-hosts.sh\` on this machine ($cores cores, load average $load at the start, Linux $(uname -r), MPICH $(mpichversion | sed -n 's/^MPICH Version:[[:space:]]*//p'), ch4:ucx)."
  echo
  echo "**A virtual link on one machine, not a real network.** The two \"hosts\" are network namespaces of one kernel joined by a"
  echo "veth pair (MTU $(ip netns exec "${PIPPY_HOSTS}A" cat /sys/class/net/pp0/mtu)); each rank has its own host name and /dev/shm"
  echo "(tools/two-hosts). Between them MPI's messages go through the kernel's TCP stack on the same two cores that run the"
  echo "ranks, so these numbers say what the software path costs here, not what a cluster's network gives. The two cores are"
  echo "shared with other work on this machine; single runs vary (see bench/README.md)."
  echo
  echo "\`PipelineBench bandwidth\`: rank 0 sends a learned tensor (memory only, into a receive posted in advance) to rank 1 and"
  echo "waits for a one-byte reply; an in-process copy of the same size on rank 0, the other core idle, alternates with it round by"
  echo "round (15 rounds after 3): medians, and the median of each round's send / copy bandwidth ratio."
  echo
  echo "## Two ranks of one host: shared memory (Pippy's slots) and MPI alone (UCX's shared-memory transports)"
  echo
  echo "$table_head"
  echo "$in_host"
  echo
  echo "## Rank 0 on hostA, rank 1 on hostB: MPI over the veth (UCX_TLS=tcp,self, UCX_NET_DEVICES=pp0)"
  echo
  echo "Pippy's ranks on the two hosts share no memory (their host names differ), so MPI's path is the only one."
  echo
  echo "$table_head"
  echo "$over_tcp" | grep '^|'
  echo
  echo "$(echo "$over_tcp" | sed -n 's/^bytes over the veth: //p') (the tensors crossed the link)."
  echo
  echo "## The same with UCX's default transports: not the link"
  echo
  echo "Without UCX_TLS, UCX takes the other namespace for the same machine (one kernel, one boot) and reaches it through its"
  echo "shared-memory transports: almost nothing crosses the veth, and these are in-host numbers. The table above therefore"
  echo "sets UCX_TLS=tcp,self; on real hosts UCX has no such path and picks the network by itself. (The two-host tests keep"
  echo "UCX's defaults: with UCX_TLS=tcp,self, MPI_Finalize hung in 5 of 8 of their jobs, see docs/cluster.md.)"
  echo
  echo "$table_head"
  echo "$over_default" | grep '^|'
  echo
  echo "$(echo "$over_default" | sed -n 's/^bytes over the veth: //p')."
} > "$out"
cat "$out"
