#!/usr/bin/env bash
# What the SDK adds to a real livepatch build: samples/KernelLivepatch built with kbuild against the cached
# CONFIG_LIVEPATCH kernel tree (eng/kernel-oracle), `dotnet build -t:Rebuild` in a fresh MSBuild process each round.
# From MSBuild's task performance summary: our tasks (ConvertKlpSymbols, PatchLivepatchObjects,
# VerifyLivepatchModule) against KbuildMake, and against gcc compiling livepatch.c with kbuild's own command line
# (read back from kbuild's .livepatch.o.cmd) run on its own.
# Our figures are cold: each round loads the task assembly and starts the native ppc-livepatch server once, as a
# command-line build does. The same rounds with PpcLivepatchUseNativeTool=false show the steps run in MSBuild's process.
# Usage: bench/sdk-build.sh [ROUNDS]   (default 5; figures are medians)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rounds=${1:-5}
# shellcheck source=bench/lib.sh
. bench/lib.sh
klp_tree

./build.sh pack >/dev/null

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cp samples/KernelLivepatch/KernelLivepatch.csproj samples/KernelLivepatch/livepatch.c global.json "$work/"
sed "s#artifacts/packages#$root/artifacts/packages#" nuget.config > "$work/nuget.config"
dotnet restore "$work" -nologo -v quiet >/dev/null

tasks="KbuildMake ConvertKlpSymbols PatchLivepatchObjects VerifyLivepatchModule"
for ((i = 0; i < rounds; i++)); do
  dotnet build "$work" -t:Rebuild --no-restore -nologo -tl:off -nodeReuse:false -p:KernelDir="$KO_KLP_BUILD" \
    -clp:PerformanceSummary > "$work/build.log" || { tail -n 30 "$work/build.log" >&2; exit 1; }
  for t in $tasks; do
    awk -v t="$t" '/Task Performance Summary/ { s = 1 } s && $3 == t { print $1 }' "$work/build.log" >> "$work/$t.ms"
  done
  dotnet build "$work" -t:Rebuild --no-restore -nologo -tl:off -nodeReuse:false -p:KernelDir="$KO_KLP_BUILD" \
    -p:PpcLivepatchUseNativeTool=false -clp:PerformanceSummary > "$work/inproc.log" || { tail -n 30 "$work/inproc.log" >&2; exit 1; }
  for t in ConvertKlpSymbols PatchLivepatchObjects VerifyLivepatchModule; do
    awk -v t="$t" '/Task Performance Summary/ { s = 1 } s && $3 == t { print $1 }' "$work/inproc.log" >> "$work/$t.inproc.ms"
  done
done
median_ms() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Warm: four copies of the sample in one solution, built by one MSBuild node (-m:1), as an IDE's long-lived build
# node or a multi-project build runs them: the first project starts the server, the other three reuse it.
multi=$work/multi; mkdir -p "$multi"
cp "$work/global.json" "$work/nuget.config" "$multi/"
dotnet new sln --format sln -o "$multi" -n Livepatches >/dev/null
for n in 1 2 3 4; do
  mkdir -p "$multi/p$n"; cp "$work/KernelLivepatch.csproj" "$work/livepatch.c" "$multi/p$n/"
  dotnet sln "$multi/Livepatches.sln" add "$multi/p$n/KernelLivepatch.csproj" >/dev/null
done
dotnet restore "$multi/Livepatches.sln" -nologo -v quiet >/dev/null
for ((i = 0; i < rounds; i++)); do
  dotnet build "$multi/Livepatches.sln" -t:Rebuild --no-restore -m:1 -nologo -tl:off -nodeReuse:false -p:KernelDir="$KO_KLP_BUILD" \
    -clp:PerformanceSummary > "$work/multi.log" || { tail -n 30 "$work/multi.log" >&2; exit 1; }
  for t in PatchLivepatchObjects VerifyLivepatchModule; do
    awk -v t="$t" '/Task Performance Summary/ { s = 1 } s && $3 == t { print $1 }' "$work/multi.log" >> "$work/$t.multi.ms"
  done
done

# gcc alone: kbuild's exact compile of livepatch.c, run from the kernel tree as kbuild runs it.
compile=$(sed -n 's/^cmd_[^ ]*\/livepatch\.o := //p' "$work/obj/Debug/livepatch/kbuild/.livepatch.o.cmd")
[ -n "$compile" ] || { echo "kbuild's compile command for livepatch.c not found" >&2; exit 1; }
for ((i = 0; i < rounds; i++)); do
  start=$(date +%s%N); (cd "$KO_KLP_BUILD" && eval "$compile"); end=$(date +%s%N)
  echo $(((end - start) / 1000000)) >> "$work/gcc.ms"
done

kbuild=$(median_ms "$work/KbuildMake.ms"); gcc=$(median_ms "$work/gcc.ms")
convert=$(median_ms "$work/ConvertKlpSymbols.ms"); patch=$(median_ms "$work/PatchLivepatchObjects.ms")
verify=$(median_ms "$work/VerifyLivepatchModule.ms")
echo "samples/KernelLivepatch, kbuild against $KO_KLP_BUILD; $rounds rounds, median ms"
echo "gcc (kbuild's command): $gcc   KbuildMake (compile + modpost + link): $kbuild"
echo "ConvertKlpSymbols: $convert   PatchLivepatchObjects: $patch   VerifyLivepatchModule: $verify"
# Warm per project: the four projects' total minus one cold project, over the other three.
warm=$(awk -v p4="$(median_ms "$work/PatchLivepatchObjects.multi.ms")" -v v4="$(median_ms "$work/VerifyLivepatchModule.multi.ms")" \
  -v p="$patch" -v v="$verify" 'BEGIN { w = (p4 + v4 - p - v) / 3; printf "%.0f", w < 0 ? 0 : w }')
echo "in MSBuild's process (PpcLivepatchUseNativeTool=false): ConvertKlpSymbols: $(median_ms "$work/ConvertKlpSymbols.inproc.ms")" \
  "  PatchLivepatchObjects: $(median_ms "$work/PatchLivepatchObjects.inproc.ms")   VerifyLivepatchModule: $(median_ms "$work/VerifyLivepatchModule.inproc.ms")"
awk -v g="$gcc" -v k="$kbuild" -v c="$convert" -v p="$patch" -v v="$verify" -v w="$warm" 'BEGIN {
  printf "cold (first project in a fresh MSBuild process): patch+verify = %.1f%% of the gcc compile, %.1f%% of KbuildMake; with convert %.1f%%\n", 100 * (p + v) / g, 100 * (p + v) / k, 100 * (c + p + v) / g
  printf "warm (later projects in the same node): patch+verify = %s ms = %.1f%% of the gcc compile\n", w, 100 * w / g }'
