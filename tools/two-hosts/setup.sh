#!/bin/sh
# Two "hosts" on this machine for trying multi-host runs (as root): network namespaces pippyA and pippyB joined by a
# veth pair named pp0 on both sides (10.77.0.1 and 10.77.0.2). Nothing else can reach them. teardown.sh removes them.
set -e
ip netns add pippyA
ip netns add pippyB
ip link add ppa type veth peer name ppb
ip link set ppa netns pippyA
ip link set ppb netns pippyB
ip -n pippyA link set ppa name pp0
ip -n pippyB link set ppb name pp0
ip -n pippyA addr add 10.77.0.1/24 dev pp0
ip -n pippyB addr add 10.77.0.2/24 dev pp0
for ns in pippyA pippyB; do
  ip -n "$ns" link set lo up
  ip -n "$ns" link set pp0 up
done
