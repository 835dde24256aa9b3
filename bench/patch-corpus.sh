#!/usr/bin/env bash
# Patch on a whole kernel's modules, against a reference rewriter, in one run on one machine:
#   patch:   the ahead-of-time compiled `ppc-livepatch patch --sites all-local` (jump table proofs, the rewrite and
#            the translation validator that checks it) of every module of Debian's ppc64el kernel, one process each
#   objcopy: `powerpc64le-linux-gnu-objcopy IN OUT` of the same modules, one process each — binutils rewriting the
#            same objects without changing anything
# and how the sites went: fixed by insert-nop, by island, left (by code).
# Usage: bench/patch-corpus.sh [ROUNDS]   (default 3; the figure is the median round)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
# shellcheck source=bench/lib.sh
. bench/lib.sh
work=$(mktemp -d); list=$work/list
trap 'rm -rf "$work"' EXIT
corpus_modules "$list"
native=artifacts/bin/ppc-livepatch-native/ppc-livepatch
dotnet publish src/Cli -c Release -r linux-x64 -p:PublishAot=true -p:PackAsTool=false -nologo -v quiet -o artifacts/bin/ppc-livepatch-native >/dev/null

patch_all() { while read -r ko; do "$native" patch --sites all-local -o "$work/out.ko" "$ko" >/dev/null || true; done < "$list"; }
objcopy_all() { while read -r ko; do powerpc64le-linux-gnu-objcopy "$ko" "$work/out.ko" || true; done < "$list"; }
p=$(median patch_all)
o=$(median objcopy_all)
echo "corpus: $(wc -l < "$list") modules of linux-image-$KO_ABI-powerpc64le; $rounds rounds, median"
echo "patch --sites all-local (native, one process each): $p s"
echo "objcopy (one process each):                        $o s"
awk -v p="$p" -v o="$o" 'BEGIN { printf "patch/objcopy = %.2f\n", p / o }'
# How the sites went (one more pass, JSON summaries).
fixed_nop=0 fixed_island=0 left=0
while read -r ko; do
  out=$("$native" patch --sites all-local --format json -o "$work/out.ko" "$ko" 2>/dev/null || true)
  fixed_nop=$((fixed_nop + $(grep -c '"strategy": "insert-nop"' <<<"$out" || true)))
  fixed_island=$((fixed_island + $(grep -c '"strategy": "island"' <<<"$out" || true)))
  left=$((left + $(grep -c '"severity": "warning"' <<<"$out" || true)))
done < "$list"
echo "sites fixed: $fixed_nop by insert-nop, $fixed_island by island; warnings (all-local sites left as they are, and others): $left"
