#!/usr/bin/env bash
# `ppc-livepatch diff` against kpatch's create-diff-object on the same pairs, in one run on one machine:
#   the test pairs (tests/fixtures/diff/pairs, small files of fs/proc) and two large objects compiled before and
#   after a one-line patch (bench/diff-patches: kernel/sched/core.o, 340 KiB; mm/page_alloc.o, 170 KiB), built with
#   the kernel-oracle tree's kbuild command lines by tests/fixtures/diff/build-pairs.sh.
# Both builds of the CLI (ReadyToRun .NET, ahead-of-time native), one process per pair. create-diff-object is built from
# a dynup/kpatch checkout named by KPATCH_SRC (not served by Debian 12); without one its column is left out.
# Usage: [KPATCH_SRC=DIR] bench/diff.sh [ROUNDS]   (default 5; the figure is the median round)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
# shellcheck source=bench/lib.sh
. bench/lib.sh
klp_tree
cli=artifacts/bin/ppc-livepatch/ppc-livepatch.dll
dotnet publish src/Cli -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true -nologo -v quiet -o artifacts/bin/ppc-livepatch >/dev/null
native=artifacts/bin/ppc-livepatch-native/ppc-livepatch
dotnet publish src/Cli -c Release -r linux-x64 -p:PublishAot=true -p:PackAsTool=false -nologo -v quiet -o artifacts/bin/ppc-livepatch-native >/dev/null

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
tests/fixtures/diff/build-pairs.sh bench/diff-patches "$work/large" >/dev/null
readelf_symtab="$work/vmlinux.symtab"
powerpc64le-linux-gnu-readelf -s --wide "$KO_KLP_BUILD/vmlinux" | sed -r 's/\s+\[<localentry>: 8\]//' > "$readelf_symtab"

cdo=""
if [ -n "${KPATCH_SRC:-}" ]; then
  make -s -C "$KPATCH_SRC/kpatch-build" create-diff-object >/dev/null
  cdo=$KPATCH_SRC/kpatch-build/create-diff-object
  # What kpatch-build exports from the kernel's headers (ppc64, Linux 6.1).
  export BUG_STRUCT_SIZE=12 EX_STRUCT_SIZE=8 JUMP_STRUCT_SIZE=16 FIXUP_STRUCT_SIZE=48 PRINTK_INDEX_STRUCT_SIZE=0 \
    STATIC_CALL_STRUCT_SIZE=8 ORC_STRUCT_SIZE=6 ALT_STRUCT_SIZE=12 PARA_STRUCT_SIZE=16
fi

ours_net() { dotnet "$cli" diff "$1" "$2" -o "$work/out.o" --symbols "$KO_KLP_BUILD/vmlinux"; }
ours_native() { "$native" diff "$1" "$2" -o "$work/out.o" --symbols "$KO_KLP_BUILD/vmlinux"; }
kpatch() { "$cdo" "$1" "$2" vmlinux "$readelf_symtab" "$KO_KLP_BUILD/Module.symvers" livepatch_bench "$work/kp.o"; }

echo "diff, $rounds rounds, median seconds per pair (one process each); --symbols vmlinux for ours"
printf '%-28s %8s %8s %8s %8s  %s\n' pair ".NET" native kpatch "nat/kp" "included (ours | kpatch)"
total_native=0; total_kpatch=0
for orig in tests/fixtures/diff/pairs/*.orig.o "$work"/large/*.orig.o; do
  name=$(basename "$orig" .orig.o); patched=${orig%.orig.o}.patched.o
  n=$(median ours_net "$orig" "$patched"); a=$(median ours_native "$orig" "$patched")
  ours=$("$native" diff "$orig" "$patched" -o "$work/out.o" --symbols "$KO_KLP_BUILD/vmlinux" --format json \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print(",".join(d["changed"]+d["new"]) if d["succeeded"] else "refused " + ",".join(sorted({x["code"] for x in d["diagnostics"] if x["severity"] == "error"})))' \
    || true)
  k="-"; ratio="-"; theirs="-"
  if [ -n "$cdo" ]; then
    k=$(median kpatch "$orig" "$patched")
    theirs=$( (kpatch "$orig" "$patched" 2>&1 || true) | sed -n 's/.*\(changed\|new\) function: //p' | paste -sd, -)
    [ -n "$theirs" ] || theirs="none (exit $(kpatch "$orig" "$patched" >/dev/null 2>&1 && echo 0 || echo $?))"
    ratio=$(awk -v a="$a" -v k="$k" 'BEGIN { printf "%.2f", (k > 0 ? a / k : 0) }')
    total_kpatch=$(awk -v t="$total_kpatch" -v k="$k" 'BEGIN { print t + k }')
  fi
  total_native=$(awk -v t="$total_native" -v a="$a" 'BEGIN { print t + a }')
  printf '%-28s %8s %8s %8s %8s  %s | %s\n' "$name" "$n" "$a" "$k" "$ratio" "$ours" "$theirs"
done
[ -n "$cdo" ] && awk -v a="$total_native" -v k="$total_kpatch" \
  'BEGIN { printf "all pairs: native %.3f s, create-diff-object %.3f s, native/create-diff-object = %.2f\n", a, k, a / k }'
