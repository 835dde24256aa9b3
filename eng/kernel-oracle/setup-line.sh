#!/usr/bin/env bash
# Prepares one of the newer oracle kernel lines: a small CONFIG_LIVEPATCH kernel built from Debian's own source by
# Debian 13's GCC 14 (the compiler that makes ppc64le ftrace -fpatchable-function-entry; GCC 12 falls back to
# -mprofile-kernel). Idempotent; everything lives in the kernel cache ($PPCLP_KERNEL_CACHE, as setup.sh).
#
#   eng/kernel-oracle/setup-line.sh 6.12    linux-source-6.12 of Debian 13: two patchable nops at each entry
#   eng/kernel-oracle/setup-line.sh 7.2     linux-source-7.2 of Debian testing: one nop, ftrace out of line
#
# The build runs in a Debian 13 environment (debootstrap, Debian's packages only) made once and shared by the
# lines; in-trixie.sh runs commands in it. Writes $KO_DIR/klp-LINE/env.sh for the tests.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
KO_DIR=${PPCLP_KERNEL_CACHE:-$HOME/.cache/ppclivepatch-kernel-oracle}
line=${1:?usage: setup-line.sh 6.12|7.2}
case "$line" in
  6.12) suite=stable; expect=CONFIG_ARCH_USING_PATCHABLE_FUNCTION_ENTRY=y; ftrace=patchable-entry ;;
  7.2) suite=testing; expect=CONFIG_PPC_FTRACE_OUT_OF_LINE=y; ftrace=out-of-line ;;
  *) echo "setup-line: no kernel line '$line' (6.12 or 7.2)" >&2; exit 2 ;;
esac
log() { echo "kernel-oracle $line: $*" >&2; }
sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
mkdir -p "$KO_DIR"

# 1. The Debian 13 environment, from the archive this machine already uses: kbuild's tools, GCC 14 for ppc64le and its
#    C library (the GCC 14 runs of the tests link their programs with it).
env_dir=$KO_DIR/trixie
packages=(gcc-powerpc64le-linux-gnu binutils-powerpc64le-linux-gnu libc6-dev-ppc64el-cross make gcc libc6-dev flex bison
  bc libelf-dev libssl-dev openssl xz-utils cpio kmod perl ca-certificates libicu76)
if [ ! -f "$env_dir/.ready" ]; then
  command -v debootstrap >/dev/null 2>&1 || {
    log "installing debootstrap"
    $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends debootstrap >/dev/null
  }
  uri=$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ && u {print u; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$uri" ] || { log "cannot find the Debian archive in /etc/apt"; exit 1; }
  log "making the Debian 13 build environment (debootstrap, a few minutes)"
  $sudo rm -rf "$env_dir"; mkdir -p "$env_dir"
  $sudo debootstrap --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" \
    trixie "$env_dir/root" "$uri" >"$env_dir/debootstrap.log" 2>&1 || { tail -n 20 "$env_dir/debootstrap.log" >&2; exit 1; }
  # linux-source-7.x comes from testing, whose Release file on a mirror snapshot may be past its Valid-Until; only the
  # source package is taken from it (pinned below everything of trixie).
  echo "deb [check-valid-until=no] $uri testing main" | $sudo tee "$env_dir/root/etc/apt/sources.list.d/testing.list" >/dev/null
  printf 'Package: *\nPin: release a=testing\nPin-Priority: 1\n' | $sudo tee "$env_dir/root/etc/apt/preferences.d/testing" >/dev/null
  touch "$env_dir/.ready"
  "$here/in-trixie.sh" apt-get update -qq
fi
# An environment made before a package joined the list gets it.
wanted=$(printf '%s\n' "${packages[@]}" | sha256sum | cut -c1-16)
if [ "$(cat "$env_dir/.packages" 2>/dev/null)" != "$wanted" ]; then
  "$here/in-trixie.sh" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  echo "$wanted" > "$env_dir/.packages"
fi

# 2. The line's source, as Debian ships it.
line_dir=$KO_DIR/klp-$line
src=$line_dir/src
fragment=$line_dir/klp-kernel.config
# The small configuration of the 6.1 oracle, without the part that widens it for the stable-change corpus.
mkdir -p "$line_dir"
sed '/^# More of a distribution/,$d' "$here/klp-kernel.config" > "$fragment.new"
mv -f "$fragment.new" "$fragment"
if [ ! -f "$src/.extracted" ]; then
  log "downloading linux-source-$line ($suite)"
  rm -rf "$src"; mkdir -p "$src"
  (cd "$src" && "$here/in-trixie.sh" apt-get download -qq -t "$suite" "linux-source-$line" 2>&1 | grep -v unsandboxed || true)
  ls "$src"/linux-source-"$line"_*.deb >/dev/null
  (cd "$src" && dpkg-deb --fsys-tarfile linux-source-*.deb | tar -x --wildcards -O './usr/src/linux-source-*.tar.xz' | tar -xJ)
  rm -f "$src"/linux-source-*.deb
  touch "$src/.extracted"
fi
tree=$src/linux-source-$line
version=$(make -s -C "$tree" kernelversion)

# 3. The kernel, built where its host tools will run.
build=$line_dir/build
stamp="$build/.built-$(sha256sum "$fragment" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  log "building Linux $version with GCC 14 (several minutes)"
  rm -rf "$build"; mkdir -p "$build"
  make_args=(-s -C "$tree" O="$build" ARCH=powerpc CROSS_COMPILE=powerpc64le-linux-gnu-)
  "$here/in-trixie.sh" make "${make_args[@]}" KCONFIG_ALLCONFIG="$fragment" allnoconfig >/dev/null
  while read -r cfg; do
    case "$cfg" in CONFIG_*=[ym]) grep -qx "$cfg" "$build/.config" || { log "config did not keep $cfg"; exit 1; } ;; esac
  done < "$fragment"
  grep -qx "$expect" "$build/.config" || { log "GCC 14 did not select $expect: not the ftrace model of this line"; exit 1; }
  "$here/in-trixie.sh" make -s -C "$build" ARCH=powerpc CROSS_COMPILE=powerpc64le-linux-gnu- -j"$(nproc)" all >/dev/null
  touch "$stamp"
fi

cat > "$line_dir/env.sh.$$" <<ENV
KO_LINE=$line
KO_LINE_VERSION=$version
KO_LINE_FTRACE=$ftrace
KO_LINE_BUILD=$build
ENV
mv -f "$line_dir/env.sh.$$" "$line_dir/env.sh"
log "ready: $line_dir/env.sh (Linux $version, $ftrace)"
