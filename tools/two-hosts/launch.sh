#!/bin/sh
# MPICH hydra's launcher for the two namespace "hosts" of setup.sh (mpiexec -launcher ssh -launcher-exec
# tools/two-hosts/launch.sh, with the same PIPPY_HOSTS in mpiexec's environment): hydra calls it as it would call ssh,
# [options] host command..., and it runs the command in that host's network namespace with a hostname of its own
# (UTS namespace) and a /dev/shm of its own (mount namespace). The process ids stay the machine's (no PID namespace),
# so a test can kill a rank by the id it prints.
prefix="${PIPPY_HOSTS:-pippy}"
while [ $# -gt 0 ]; do
  case "$1" in
    -*) shift ;;
    *) break ;;
  esac
done
host="$1"
shift
case "$host" in
  hostA) ns="${prefix}A" ;;
  hostB) ns="${prefix}B" ;;
  *) echo "launch.sh: unknown host $host (hostA or hostB)" >&2; exit 1 ;;
esac
exec ip netns exec "$ns" unshare --uts --mount --propagation private \
  sh -c 'hostname "$0"; mount -t tmpfs none /dev/shm; exec sh -c "$*"' "$host" "$@"
