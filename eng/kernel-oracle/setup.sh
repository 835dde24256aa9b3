#!/usr/bin/env bash
# Prepares the real-kernel oracle: ppc64le kernels under qemu-system-ppc64 whose own module loader judges our
# modules. Idempotent; everything big lives in a cache folder outside the repository ($PPCLP_KERNEL_CACHE, default
# ~/.cache/ppclivepatch-kernel-oracle), reused when present and rebuilt when missing.
#
#   eng/kernel-oracle/setup.sh          Debian's ppc64el kernel image, headers and kbuild tools, and busybox
#   eng/kernel-oracle/setup.sh --klp    also a small kernel built from Debian's linux-source with CONFIG_LIVEPATCH=y
#
# Writes $KO_DIR/env.sh with the paths the tests and run.sh use.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
KO_DIR=${PPCLP_KERNEL_CACHE:-$HOME/.cache/ppclivepatch-kernel-oracle}
klp=false
[ "${1:-}" = "--klp" ] && klp=true
mkdir -p "$KO_DIR"
log() { echo "kernel-oracle: $*" >&2; }

# 1. Host packages.
packages=(qemu-system-ppc make cpio gzip xz-utils gcc-powerpc64le-linux-gnu binutils-powerpc64le-linux-gnu)
$klp && packages+=(gcc libc6-dev flex bison bc libelf-dev libssl-dev openssl)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. ppc64el package indices through a private apt configuration: the machine's own apt setup is not touched
#    (no foreign architecture is added). The archive is the one the machine already uses for its main suite.
apt_dir=$KO_DIR/apt
export APT_CONFIG=$apt_dir/apt.conf
if [ ! -f "$apt_dir/updated" ]; then
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/parts" "$apt_dir/prefs"
  : > "$apt_dir/status"
  uri=$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ && u {print u; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$uri" ] || { log "cannot find the Debian bookworm archive in /etc/apt"; exit 1; }
  echo "deb [arch=amd64,ppc64el signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri bookworm main" > "$apt_dir/sources.list"
  cat > "$apt_dir/apt.conf" <<CONF
Dir::State::Lists "$apt_dir/lists";
Dir::State::status "$apt_dir/status";
Dir::Cache "$apt_dir/cache";
Dir::Etc::SourceList "$apt_dir/sources.list";
Dir::Etc::SourceParts "$apt_dir/parts";
Dir::Etc::PreferencesParts "$apt_dir/prefs";
APT::Architecture "amd64";
APT::Architectures { "amd64"; "ppc64el"; };
DPkg::Lock::Timeout "120";
CONF
  log "updating private ppc64el package lists"
  apt-get update -qq
  touch "$apt_dir/updated"
fi

# 3. One kernel version for image, headers, kbuild tools and source.
abi=$(apt-cache depends linux-image-powerpc64le:ppc64el 2>/dev/null | sed -nE 's/.*Depends: linux-image-([0-9.]+-[0-9]+)-powerpc64le.*/\1/p' | head -n 1)
[ -n "$abi" ] || { log "no linux-image-powerpc64le:ppc64el in the package lists"; exit 1; }
version=$(apt-cache policy "linux-image-$abi-powerpc64le:ppc64el" | sed -nE 's/ *Candidate: (.*)/\1/p')
series=${abi%%-*}; series=${series%.*}   # 6.1.0-50 -> 6.1
root=$KO_DIR/$abi
if [ ! -f "$root/.extracted" ]; then
  log "downloading kernel $abi ($version)"
  mkdir -p "$root/debs" && cd "$root/debs"
  apt-get download -qq "linux-image-$abi-powerpc64le:ppc64el=$version" "linux-headers-$abi-powerpc64le:ppc64el=$version" \
    "linux-headers-$abi-common=$version" "linux-kbuild-$series=$version" "busybox-static:ppc64el" 2>&1 | grep -v unsandboxed || true
  mkdir -p "$root/root" "$root/image"
  for d in linux-headers-*.deb linux-kbuild-*.deb; do dpkg-deb -x "$d" "$root/root"; done
  dpkg-deb -x linux-image-*.deb "$root/image"
  dpkg-deb -x busybox-static_*.deb "$root/busybox"
  # The flavour's Makefile includes the common headers by their installed path; point it at the extracted copy.
  sed -i "s|/usr/src/linux-headers-$abi-common|$root/root/usr/src/linux-headers-$abi-common|" "$root/root/usr/src/linux-headers-$abi-powerpc64le/Makefile"
  touch "$root/.extracted"
  cd "$here"
fi
debian_headers=$root/root/usr/src/linux-headers-$abi-powerpc64le
debian_vmlinux=$(ls "$root/image/boot/"vmlinux-* | head -n 1)
busybox=$root/busybox/bin/busybox

# 4. The livepatch kernel: Debian's own source, a small config with CONFIG_LIVEPATCH=y.
klp_build=$KO_DIR/klp-$abi/build
if $klp; then
  fragment=$here/klp-kernel.config
  stamp="$klp_build/.built-$(sha256sum "$fragment" | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    src=$KO_DIR/klp-$abi/src
    if [ ! -d "$src/linux-source-$series" ]; then
      log "downloading linux-source-$series"
      mkdir -p "$src" && cd "$src"
      apt-get download -qq "linux-source-$series=$version" 2>&1 | grep -v unsandboxed || true
      dpkg-deb --fsys-tarfile linux-source-*.deb | tar -x --wildcards -O './usr/src/linux-source-*.tar.xz' | tar -xJ
      cd "$here"
    fi
    log "building the livepatch kernel (a few minutes)"
    rm -rf "$klp_build" && mkdir -p "$klp_build"
    make -s -C "$src/linux-source-$series" O="$klp_build" ARCH=powerpc CROSS_COMPILE=powerpc64le-linux-gnu- \
      KCONFIG_ALLCONFIG="$fragment" allnoconfig >/dev/null
    while read -r line; do
      case "$line" in CONFIG_*=[ym]) grep -qx "$line" "$klp_build/.config" || { log "config did not keep $line"; exit 1; } ;; esac
    done < "$fragment"
    make -s -C "$klp_build" ARCH=powerpc CROSS_COMPILE=powerpc64le-linux-gnu- -j"$(nproc)" all >/dev/null
    touch "$stamp"
  fi
fi

# A run without --klp keeps naming a livepatch kernel an earlier run built (a bench run must not hide it from the
# tests); the file is replaced whole, so a reader never sees half of it.
klp_ready=""
if $klp || compgen -G "$KO_DIR/klp-$abi/build/.built-*" >/dev/null; then klp_ready=$KO_DIR/klp-$abi/build; fi
cat > "$KO_DIR/env.sh.$$" <<ENV
KO_DIR=$KO_DIR
KO_ABI=$abi
KO_DEBIAN_HEADERS=$debian_headers
KO_DEBIAN_VMLINUX=$debian_vmlinux
KO_BUSYBOX=$busybox
KO_KLP_BUILD=$klp_ready
ENV
mv -f "$KO_DIR/env.sh.$$" "$KO_DIR/env.sh"
log "ready: $KO_DIR/env.sh"
