#!/bin/sh
# Two "hosts" on this machine for trying multi-host runs (as root): network namespaces ${PIPPY_HOSTS}A and
# ${PIPPY_HOSTS}B joined by a veth pair named pp0 on both sides, addressed $PIPPY_HOST_A_ADDRESS and
# $PIPPY_HOST_B_ADDRESS (with a prefix length). Defaults: PIPPY_HOSTS=pippy, 10.77.0.1/24 and 10.77.0.2/24. A test
# gives each run its own prefix and addresses, so that runs side by side, or left over from a killed run, do not
# collide. Nothing else can reach the namespaces.
# teardown.sh (same PIPPY_HOSTS) removes them.
set -e
prefix="${PIPPY_HOSTS:-pippy}"
address_a="${PIPPY_HOST_A_ADDRESS:-10.77.0.1/24}"
address_b="${PIPPY_HOST_B_ADDRESS:-10.77.0.2/24}"
# The veth ends' names in this namespace, before they move: interface names have at most 15 characters.
if [ ${#prefix} -gt 14 ]; then
  echo "setup.sh: PIPPY_HOSTS '$prefix' is longer than 14 characters (it names the veth ends)" >&2
  exit 2
fi
ip netns add "${prefix}A"
ip netns add "${prefix}B"
ip link add "${prefix}a" type veth peer name "${prefix}b"
ip link set "${prefix}a" netns "${prefix}A"
ip link set "${prefix}b" netns "${prefix}B"
ip -n "${prefix}A" link set "${prefix}a" name pp0
ip -n "${prefix}B" link set "${prefix}b" name pp0
ip -n "${prefix}A" addr add "$address_a" dev pp0
ip -n "${prefix}B" addr add "$address_b" dev pp0
for ns in "${prefix}A" "${prefix}B"; do
  ip -n "$ns" link set lo up
  ip -n "$ns" link set pp0 up
done
