#!/usr/bin/env bash
# Runs a command inside the Debian 13 (trixie) environment that builds the 6.12 and 7.x oracle kernels, in the current
# directory. Their host tools (fixdep, modpost) are linked against that environment's C library and the modules must
# be compiled by its GCC 14, so kbuild against those trees - and so the SDK's kbuild mode and KernelPatch - runs here.
#
#   eng/kernel-oracle/in-trixie.sh COMMAND [ARG...]
#
# The environment is $PPCLP_KERNEL_CACHE/trixie (setup-line.sh makes it). Mounts live in a private mount namespace
# and vanish with the command: /proc, /dev, the kernel cache, the repository, /tmp, the .NET SDK and the NuGet caches
# appear at the same paths inside as outside, so every path a build writes means the same file on both sides.
set -euo pipefail
KO_DIR=${PPCLP_KERNEL_CACHE:-$HOME/.cache/ppclivepatch-kernel-oracle}
root=$KO_DIR/trixie/root
[ -f "$KO_DIR/trixie/.ready" ] || { echo "in-trixie: no environment at $root; run eng/kernel-oracle/setup-line.sh" >&2; exit 1; }
repo=$(cd "$(dirname "$0")/../.." && pwd)
sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo

# Folders shared at their own paths (each only when it exists on this machine).
shared=("$KO_DIR" "$repo" "${TMPDIR:-/tmp}" "$PWD")
dotnet_root=${DOTNET_ROOT:-}
if [ -z "$dotnet_root" ] && command -v dotnet >/dev/null 2>&1; then dotnet_root=$(dirname "$(readlink -f "$(command -v dotnet)")"); fi
[ -n "$dotnet_root" ] && shared+=("$dotnet_root")
shared+=("${NUGET_PACKAGES:-$HOME/.nuget/packages}" "$HOME/.nuget/NuGet" "$HOME/.dotnet" "$HOME/.templateengine" /opt/nuget)

script='set -e
r=$1; shift
mount -t proc proc "$r/proc"
mount --rbind /dev "$r/dev"
while [ "$1" != -- ]; do
  d=$1; shift
  [ -d "$d" ] && [ "$d" != / ] || continue
  mkdir -p "$r$d" && mount --rbind "$d" "$r$d"
done
shift
cp /etc/resolv.conf "$r/etc/resolv.conf" 2>/dev/null || true
exec chroot "$r" "$@"'
# The command sees this environment (the SDK's, the test host's), with a PATH of the Debian 13 system and the same
# .NET; this machine's certificate store comes along, for NuGet feeds behind the machine's own authority.
env_args=(PATH="${dotnet_root:+$dotnet_root:}/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
  DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PPCLP_KERNEL_CACHE="$KO_DIR")
[ -n "$dotnet_root" ] && env_args+=(DOTNET_ROOT="$dotnet_root")
[ -d /etc/ssl/certs ] && shared+=(/etc/ssl/certs)
exec $sudo unshare --mount --propagation private sh -c "$script" in-trixie "$root" "${shared[@]}" -- \
  /usr/bin/env "${env_args[@]}" sh -c 'cd "$1" && shift && exec "$@"' in-trixie "$PWD" "$@"
