#!/usr/bin/env bash
# What the assembler route costs a compile: `ppc-livepatch cc --all-local -- gcc …` (compile to assembly, the site
# rules, two assemblies, translation validation) against the same `gcc -c` on its own, and against the awk wrapper
# it replaced (taken from git history: compile to assembly, nops, one assembly, no validation), over the fixture
# sources with the kernel's module flags, in the same run. Figures are medians of per-round totals.
# Usage: bench/asm-route.sh [ROUNDS]   (default 5; needs ./build.sh pack first, which builds the native tool it runs)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
# The native tool the SDK runs (Native AOT, packed by ./build.sh pack); PPCLP_TOOL=… for another build.
tool=${PPCLP_TOOL:-$PWD/src/Sdk/obj/tool-publish/Release/linux-x64/ppc-livepatch}
[ -x "$tool" ] || { echo "asm-route: $tool is missing: run ./build.sh pack first" >&2; exit 1; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
git show 9be9135:src/Sdk/Sdk/tools/ppclp-asm-cc > "$work/ppclp-asm-cc"
cc=powerpc64le-linux-gnu-gcc
flags=(-O2 -mcmodel=large -mprofile-kernel -pg -ffunction-sections -fdata-sections -g -Wall)
# Sources whose inline assembly makes calls without nops (asm_calls.c, ftr_fixup.c) are what the route refuses
# (PLP2016): left out, and counted.
sources=() refused=()
for s in tests/fixtures/src/*.c; do
  if "$tool" cc --all-local -- "$cc" "${flags[@]}" -c "$s" -o "$work/x.o" >/dev/null 2>&1; then sources+=("$s")
  else refused+=("$(basename "$s")"); fi
done

run() {   # run KIND: one pass over every source, its wall time in ms
  local start end s
  start=$(date +%s%N)
  for s in "${sources[@]}"; do
    case $1 in
      gcc) "$cc" "${flags[@]}" -c "$s" -o "$work/x.o" ;;
      route) "$tool" cc --all-local -- "$cc" "${flags[@]}" -c "$s" -o "$work/x.o" ;;
      awk) PPCLP_NOP_ALL_LOCAL=1 bash "$work/ppclp-asm-cc" "$cc" "${flags[@]}" -c "$s" -o "$work/x.o" ;;
    esac >/dev/null 2>&1 || { echo "asm-route: $1 failed on $s" >&2; exit 1; }
  done
  end=$(date +%s%N)
  echo $(((end - start) / 1000000))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for kind in gcc route awk; do run "$kind" >/dev/null; done   # warm the page cache
for ((i = 0; i < rounds; i++)); do
  for kind in gcc route awk; do run "$kind" >> "$work/$kind.ms"; done
done
g=$(median < "$work/gcc.ms"); r=$(median < "$work/route.ms"); a=$(median < "$work/awk.ms")
echo "${#sources[@]} sources, $rounds rounds (medians of per-round totals); refused by the route: ${refused[*]:-none}"
echo "gcc -c alone:            ${g} ms"
echo "ppc-livepatch cc:        ${r} ms  ($(awk -v r="$r" -v g="$g" 'BEGIN {printf "%.2f", r / g}')x gcc)"
echo "awk wrapper (replaced):  ${a} ms  ($(awk -v a="$a" -v g="$g" 'BEGIN {printf "%.2f", a / g}')x gcc)"
