#!/bin/sh
# own-hostname.sh NAME command...: runs the command with the host name NAME (a UTS namespace of its own, as root) and
# everything else of this machine: its network, /dev/shm and processes. That is how containers of one machine can look
# to the ranks in them, e.g. mpiexec -n 1 own-hostname.sh c0 dotnet app.dll : -n 1 own-hostname.sh c1 dotnet app.dll.
name="$1"
shift
exec unshare --uts sh -c 'hostname "$0"; exec "$@"' "$name" "$@"
