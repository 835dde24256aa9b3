#!/usr/bin/env bash
# The whole stable-change corpus: every per-file change between the kernel-oracle tree's Debian linux-source-6.1
# (6.1.176-1) and a later one (PPCLP_CORPUS_TO, default 6.1.187-1, from Debian's bookworm-security suite) that the
# oracle configuration compiles and that changes only function bodies (make-corpus.py), each built by
# `ppc-livepatch kernel-patch` against the oracle tree; every module built is loaded into the oracle kernel under QEMU,
# enabled, run under workload.sh (which reports the new functions ftrace saw run), disabled and unloaded. With KPATCH_SRC
# (a dynup/kpatch checkout; Debian 12 does not package kpatch) kpatch's create-diff-object is run on the same two
# objects of each unit, and the verdicts are set side by side.
# Usage: [PPCLP_CORPUS_TO=VERSION] [KPATCH_SRC=DIR] eng/stable-corpus/run.sh [OUT_DIR]   (default artifacts/stable-corpus)
# Prints one row per change and the counts; writes OUT_DIR/report.txt, the patches and each build's log.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
# shellcheck source=bench/lib.sh
. bench/lib.sh
klp_tree
to=${PPCLP_CORPUS_TO:-6.1.187-1}
out=$(realpath -m "${1:-artifacts/stable-corpus}")
newer=$KO_DIR/linux-source-$to
if [ ! -f "$newer/.extracted" ]; then
  rm -rf "$newer" && mkdir -p "$newer"
  # (apt warns that it downloads as root, not as _apt, into a directory _apt cannot write: harmless.)
  (cd "$newer" && apt-get download "linux-source-6.1=$to" >/dev/null 2>"$newer/apt.log") || { cat "$newer/apt.log" >&2

    echo "apt-get download linux-source-6.1=$to failed: it is in Debian's bookworm-security suite" \
      "(deb http://security.debian.org/debian-security bookworm-security main in apt's sources)" >&2; exit 1; }
  dpkg-deb --fsys-tarfile "$newer"/linux-source-6.1_*_all.deb | tar -xO ./usr/src/linux-source-6.1.tar.xz \
    | tar -xJ -C "$newer"
  rm "$newer"/*.deb && touch "$newer/.extracted"
fi

rm -rf "$out" && mkdir -p "$out/patches" "$out/builds"
python3 eng/stable-corpus/make-corpus.py "$(realpath "$KO_KLP_BUILD/source")" "$newer/linux-source-6.1" \
  "$KO_KLP_BUILD" "$out/patches" > "$out/selection.txt"
echo "selection: $(grep -c ': kept' "$out/selection.txt") kept of $(wc -l < "$out/selection.txt") changed C files" \
  "($(grep -c 'not compiled' "$out/selection.txt" || true) not compiled by the configuration," \
  "$(grep -c 'outside function bodies' "$out/selection.txt" || true) changing more than function bodies)"

dotnet publish src/Cli -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true -nologo -v quiet \
  -o artifacts/bin/ppc-livepatch >/dev/null
build_one() {   # PATCH: builds/NAME/{log.txt, lp_NAME.ko}
  local name module; name=$(basename "$1" .patch); module=lp_$(echo "$name" | tr -c 'a-z0-9_\n' _ | cut -c1-40)
  mkdir -p "$out/builds/$name"
  (cd "$out/builds/$name" && dotnet "$root/artifacts/bin/ppc-livepatch/ppc-livepatch.dll" kernel-patch "$1" \
     --kernel-dir "$KO_KLP_BUILD" --name "$module" > log.txt 2>&1; echo "exit $?" >> log.txt)
}
export -f build_one; export out root KO_KLP_BUILD
find "$out/patches" -name '*.patch' | sort | xargs -P "$(nproc)" -I{} bash -c 'build_one {}'

mapfile -t modules < <(find "$out/builds" -maxdepth 2 -name 'lp_*.ko' | sort)
if [ "${#modules[@]}" -gt 0 ]; then
  PPCLP_ORACLE_PROBE=$root/eng/stable-corpus/workload.sh PPCLP_ORACLE_UNLOAD=1 \
    PPCLP_BOOT_TIMEOUT=$((120 + 30 * ${#modules[@]})) eng/kernel-oracle/run.sh "$KO_KLP_BUILD/vmlinux" \
    "${modules[@]}" > "$out/boot.log" 2>&1 || true
fi

cdo=""
if [ -n "${KPATCH_SRC:-}" ]; then
  make -s -C "$KPATCH_SRC/kpatch-build" create-diff-object >/dev/null
  cdo=$KPATCH_SRC/kpatch-build/create-diff-object
  powerpc64le-linux-gnu-readelf -s --wide "$KO_KLP_BUILD/vmlinux" | sed -r 's/\s+\[<localentry>: 8\]//' \
    > "$out/vmlinux.symtab"
  # What kpatch-build exports from the kernel's headers (ppc64, Linux 6.1).
  export BUG_STRUCT_SIZE=12 EX_STRUCT_SIZE=8 JUMP_STRUCT_SIZE=16 FIXUP_STRUCT_SIZE=48 PRINTK_INDEX_STRUCT_SIZE=0 \
    STATIC_CALL_STRUCT_SIZE=8 ORC_STRUCT_SIZE=6 ALT_STRUCT_SIZE=12 PARA_STRUCT_SIZE=16
fi

python3 eng/stable-corpus/report.py "$out" "$cdo" | tee "$out/report.txt"
