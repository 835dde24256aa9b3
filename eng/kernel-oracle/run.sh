#!/usr/bin/env bash
# Boots a ppc64le kernel under qemu-system-ppc64 (pseries, TCG) with an initramfs that insmods the given modules in
# order and reports, one "ORACLE:" line each, what the kernel made of them:
#   ORACLE: insmod <module> rc=<exit status of insmod>
#   ORACLE: livepatch <patch> enabled=<0|1> transition=<0|1>     (after each insmod, every patch in /sys/kernel/livepatch)
#   ORACLE: cmdline <module> <contents of /proc/cmdline after loading it>
#   ORACLE: probe <module> <line>          (with PPCLP_ORACLE_PROBE=SCRIPT: its output, run after each insmod)
#   ORACLE: disable <patch> enabled=<0|1> transition=<0|1>         (with PPCLP_ORACLE_UNLOAD=1, for each livepatch,
#   ORACLE: rmmod <module> rc=<exit status of rmmod>                 after its probe: disabled, unloaded and probed
#   ORACLE: unloaded <module> <line>                                 again)
#   ORACLE: dmesg <line>                                           (the whole kernel log, at the end)
#   ORACLE: done
# Usage: run.sh VMLINUX MODULE.ko...      (needs setup.sh's $KO_DIR/env.sh for busybox)
set -euo pipefail
KO_DIR=${PPCLP_KERNEL_CACHE:-$HOME/.cache/ppclivepatch-kernel-oracle}
# shellcheck disable=SC1091
. "$KO_DIR/env.sh"
vmlinux=$1; shift
work=$(mktemp -d "${TMPDIR:-/tmp}/ppclp-oracle.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/bin" "$work/root/mods" "$work/root/proc" "$work/root/sys" "$work/root/dev"
cp "$KO_BUSYBOX" "$work/root/bin/busybox"
: > "$work/root/modules.list"
: > "$work/root/probe.sh"
[ -n "${PPCLP_ORACLE_PROBE:-}" ] && cp "$PPCLP_ORACLE_PROBE" "$work/root/probe.sh"
echo "${PPCLP_ORACLE_UNLOAD:-0}" > "$work/root/unload"
for ko in "$@"; do
  cp "$ko" "$work/root/mods/"
  basename "$ko" .ko >> "$work/root/modules.list"
done
cat > "$work/root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.list); do
  insmod /mods/$m.ko
  echo "ORACLE: insmod $m rc=$?"
  for p in /sys/kernel/livepatch/*; do
    [ -d "$p" ] || continue
    i=0
    while [ "$(cat $p/transition)" != 0 ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
    echo "ORACLE: livepatch $(basename $p) enabled=$(cat $p/enabled) transition=$(cat $p/transition)"
  done
  echo "ORACLE: cmdline $m $(cat /proc/cmdline | tr '\n' ' ')"
  sh /probe.sh 2>&1 | sed "s/^/ORACLE: probe $m /"
  p=/sys/kernel/livepatch/$m
  if [ "$(cat /unload)" = 1 ] && [ -d "$p" ]; then
    echo 0 > $p/enabled
    i=0
    while [ -d "$p" ] && [ "$(cat $p/transition 2>/dev/null)" != 0 ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
    echo "ORACLE: disable $m enabled=$(cat $p/enabled 2>/dev/null || echo 0) transition=$(cat $p/transition 2>/dev/null || echo 0)"
    # The core releases the patch's module reference once the transition is over, from a work item.
    i=0
    while ! rmmod $m 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
    lsmod | grep -q "^$m " && rc=1 || rc=0
    echo "ORACLE: rmmod $m rc=$rc"
    sh /probe.sh 2>&1 | sed "s/^/ORACLE: unloaded $m /"
  fi
done
dmesg | sed 's/^/ORACLE: dmesg /'
echo "ORACLE: done"
poweroff -f
INIT
chmod +x "$work/root/init"
(cd "$work/root" && find . | cpio -o -H newc --quiet | gzip -1 > "$work/initrd.cpio.gz")
timeout "${PPCLP_BOOT_TIMEOUT:-300}" qemu-system-ppc64 \
  -machine pseries,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off -cpu power9 -smp 1 -m 1G \
  -nographic -nodefaults -serial mon:stdio -no-reboot \
  -kernel "$vmlinux" -initrd "$work/initrd.cpio.gz" -append "console=hvc0 quiet" </dev/null | tr -d '\r'
