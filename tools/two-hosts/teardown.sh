#!/bin/sh
# Ends what still runs in the namespaces of setup.sh (same PIPPY_HOSTS: a job a failed test left behind) and removes
# them, and with them the veth pair; quiet when they are gone already.
prefix="${PIPPY_HOSTS:-pippy}"
for ns in "${prefix}A" "${prefix}B"; do
  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  ip netns del "$ns" 2>/dev/null
done
true
