#!/usr/bin/env bash
# A KernelPatch build against what kpatch-build must do for the same patch, in one run on one machine: samples/
# KernelPatch (a one-function patch of fs/proc/array.c) built by `dotnet build` against the prepared kernel-oracle
# tree — cold (a fresh project: restore, the original and the patched unit compiled, diff, kbuild link, patch,
# verify), warm (the patch edited: only the patched copy compiles, the original is kept) and no-op (nothing changed:
# no step runs) — and one full build of the same kernel configuration from scratch (kpatch-build builds the kernel
# twice, original and patched, before it can diff).
# Also `ppc-livepatch kernel-patch` from the same .patch, cold (a fresh work directory).
# Usage: bench/kernel-patch.sh [ROUNDS]   (default 3; figures are medians, the kernel is built once;
#        PPCLP_BENCH_NO_KERNEL=1 leaves the kernel build out and sets the CLI against the SDK)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rounds=${1:-3}
# shellcheck source=bench/lib.sh
. bench/lib.sh
klp_tree
./build.sh pack >/dev/null

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
seconds() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.1f\n", (e - s) / 1e9 }'; }
build() { # build DIR LOG: one `dotnet build` as a user types it; prints its wall seconds
  local start end
  start=$(date +%s%N)
  dotnet build "$1" -nologo -tl:off -p:KernelDir="$KO_KLP_BUILD" > "$2" || { tail -n 30 "$2" >&2; exit 1; }
  end=$(date +%s%N); seconds "$start" "$end"
}
for ((i = 0; i < rounds; i++)); do
  dir=$work/round$i
  mkdir -p "$dir"
  cp samples/KernelPatch/KernelPatch.csproj samples/KernelPatch/stat-livepatched.patch global.json "$dir/"
  sed "s#artifacts/packages#$root/artifacts/packages#" nuget.config > "$dir/nuget.config"
  build "$dir" "$dir/cold.log" >> "$work/cold"
  grep -q "compiling the original" "$dir/cold.log" || { echo "the cold build compiled no original" >&2; exit 1; }
  sed -i 's/"livepatched\\n"/"livepatched!\\n"/' "$dir/stat-livepatched.patch"
  build "$dir" "$dir/warm.log" >> "$work/warm"
  if grep -q "compiling the original" "$dir/warm.log" || ! grep -q "compiling the patched copy" "$dir/warm.log"; then
    echo "the warm build should compile the patched copy only" >&2; exit 1
  fi
  build "$dir" "$dir/noop.log" >> "$work/noop"
  if grep -q "compiling\|PrepareKernelPatches\b" "$dir/noop.log"; then echo "the no-op build ran a step" >&2; exit 1; fi
  # The same job without MSBuild: ppc-livepatch kernel-patch from the .patch alone, in a fresh directory.
  cli=$work/cli$i
  mkdir -p "$cli"
  cp samples/KernelPatch/stat-livepatched.patch "$cli/"
  start=$(date +%s%N)
  (cd "$cli" && dotnet "$root/artifacts/bin/ppc-livepatch/ppc-livepatch.dll" kernel-patch stat-livepatched.patch \
     --kernel-dir "$KO_KLP_BUILD" -o livepatch_stat.ko > cli.log) || { tail -n 30 "$cli/cli.log" >&2; exit 1; }
  end=$(date +%s%N); seconds "$start" "$end" >> "$work/cli"
done
median_of() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

cold=$(median_of "$work/cold"); warm=$(median_of "$work/warm"); noop=$(median_of "$work/noop")
clicold=$(median_of "$work/cli")
if [ -n "${PPCLP_BENCH_NO_KERNEL:-}" ]; then   # the SDK and the CLI only, against each other
  echo "KernelPatch of samples/KernelPatch, $rounds rounds, median wall seconds; $(nproc) cores"
  echo "dotnet build, cold $cold; warm $warm; no change $noop; ppc-livepatch kernel-patch, cold $clicold" \
    "($(awk -v a="$clicold" -v b="$cold" 'BEGIN { printf "%.2f", a / b }')x the SDK's cold build)"
  exit 0
fi

# One full build of the oracle configuration, as setup.sh makes it, in a fresh tree.
kernel=$work/kernel
src=$(readlink -f "$KO_KLP_BUILD/source")
make -s -C "$src" O="$kernel" ARCH=powerpc CROSS_COMPILE=powerpc64le-linux-gnu- \
  KCONFIG_ALLCONFIG="$root/eng/kernel-oracle/klp-kernel.config" allnoconfig >/dev/null
start=$(date +%s%N)
make -s -C "$kernel" ARCH=powerpc CROSS_COMPILE=powerpc64le-linux-gnu- -j"$(nproc)" all >/dev/null 2>&1
end=$(date +%s%N)
full=$(seconds "$start" "$end")

echo "KernelPatch build of samples/KernelPatch, $rounds rounds, median wall seconds; $(nproc) cores"
printf '%-44s %8s %14s\n' step seconds "x full build"
ratio() { awk -v a="$1" -v b="$full" 'BEGIN { printf "%.3f", a / b }'; }
printf '%-44s %8s %14s\n' "dotnet build, cold (fresh project)" "$cold" "$(ratio "$cold")"
printf '%-44s %8s %14s\n' "dotnet build, warm (patch edited)" "$warm" "$(ratio "$warm")"
printf '%-44s %8s %14s\n' "dotnet build, no change" "$noop" "$(ratio "$noop")"
printf '%-44s %8s %14s\n' "ppc-livepatch kernel-patch, cold" "$clicold" "$(ratio "$clicold")"
printf '%-44s %8s %14s\n' "make all, oracle config from scratch (once)" "$full" "1.000"
echo "kpatch-build builds the kernel twice: cold is $(awk -v c="$cold" -v f="$full" 'BEGIN { printf "%.3f", c / (2 * f) }') of that"
