#!/usr/bin/env bash
# Installs what Pippy.NET needs beyond the .NET SDK, only where it is missing: MPICH (Debian/Ubuntu package 'mpich'),
# the English text samples/Gpt trains on (package 'fortunes') and iproute2 (the two-host tests' namespaces). Runs apt-get as root, or through sudo when not
# root. Safe to run again.
set -euo pipefail

if ! command -v dotnet >/dev/null 2>&1; then
  echo "error: the .NET SDK (dotnet) is not on PATH; install .NET SDK 10 first: https://dotnet.microsoft.com/download" >&2
  exit 1
fi

missing=()
if command -v mpiexec.mpich >/dev/null 2>&1 && ldconfig -p | grep -q 'libmpich\.so\.12'; then
  echo "MPICH is installed: $(command -v mpiexec.mpich)"
else
  missing+=(mpich)
fi
if [ -f /usr/share/games/fortunes/fortunes ]; then
  echo "The fortunes text is installed: /usr/share/games/fortunes"
else
  missing+=(fortunes)
fi
# The two-host tests make network namespaces with iproute2's ip (tests/Runtime/TwoHosts.cs).
if command -v ip >/dev/null 2>&1; then
  echo "iproute2 is installed: $(command -v ip)"
else
  missing+=(iproute2)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: ${missing[*]} missing and this is not a Debian/Ubuntu system; install MPICH (libmpich.so.12, mpiexec.mpich) with your package manager, and give samples/Gpt a text with --text FILE" >&2
  exit 1
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then as_root=(sudo); fi
echo "Installing ${missing[*]} (apt-get install)..."
"${as_root[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
echo "Installed: ${missing[*]}"
