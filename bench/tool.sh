#!/usr/bin/env bash
# The tool as users install it, against the reference tools, in one run on one machine:
#   packs src/Cli into a private feed and runs `dotnet tool install` from it (on linux-x64 that installs the Native
#   AOT package), and extracts the portable fallback package (PpcLivepatch.Cli.any: what other hosts get, and what
#   every host got before the tool was RID-specific), run under `dotnet`;
#   verify: one process over every module of Debian's ppc64el kernel vs `powerpc64le-linux-gnu-readelf -rW` over the
#           same files (through xargs), and `--format json` against text;
#   diff:   `ppc-livepatch diff` on each of kpatch's ppc64le unit-test pairs (one process per pair, the default symbol
#           source) vs kpatch's create-diff-object on the same pair as kpatch's unit-test Makefile runs it.
# KPATCH_SRC: a dynup/kpatch checkout (its create-diff-object is built here; Debian 12 does not package it);
# KPATCH_UNIT: a dynup/kpatch-unit-test-objs checkout. Without them the diff rows are left out.
# Usage: [KPATCH_SRC=DIR KPATCH_UNIT=DIR] bench/tool.sh [ROUNDS]   (default 5; the figure is the median round)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
# shellcheck source=bench/lib.sh
. bench/lib.sh
version=$(sed -nE 's/.*"PpcLivepatch\.Build\.Sdk" *: *"([^"]+)".*/\1/p' global.json)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

dotnet pack src/Cli -c Release -nologo -v quiet -o "$work/feed" >/dev/null
# From the work directory: the repository's nuget.config names artifacts/packages, which may hold an older pack.
(cd "$work" && NUGET_PACKAGES=$work/packages dotnet tool install PpcLivepatch.Cli --version "$version" \
  --tool-path "$work/tools" --add-source "$work/feed" >/dev/null)
installed=$work/tools/ppc-livepatch
case $(readlink -f "$installed") in
  */ppclivepatch.cli.linux-x64/*) ;;
  *) echo "dotnet tool install did not install the linux-x64 native package: $(readlink -f "$installed")" >&2; exit 1 ;;
esac
unzip -q "$work/feed/PpcLivepatch.Cli.any.$version.nupkg" -d "$work/any"
portable() { dotnet "$work/any/tools/net10.0/any/ppc-livepatch.dll" "$@"; }
echo "installed: $(readlink -f "$installed" | sed "s|$work/tools/||") ($(file -bL "$installed" | cut -d, -f1-2))"

list=$work/modules
corpus_modules "$list"
mapfile -t modules < "$list"
echo "verify over $(wc -l < "$list") modules of linux-image-$KO_ABI-powerpc64le, $rounds rounds, median seconds"
verify_text() { "$installed" verify "${modules[@]}"; }
verify_json() { "$installed" verify --format json "${modules[@]}"; }
verify_portable() { portable verify "${modules[@]}"; }
readelf_all() { xargs -a "$list" powerpc64le-linux-gnu-readelf -rW; }
t=$(median verify_text); j=$(median verify_json); p=$(median verify_portable); r=$(median readelf_all)
accepted=$("$installed" verify "${modules[@]}" | grep -c ': accepted (' || true)
printf 'installed verify %8.3f  (%s accepted)\n' "$t" "$accepted"
printf 'installed json   %8.3f\n' "$j"
printf 'portable verify  %8.3f\n' "$p"
printf 'readelf -rW      %8.3f\n' "$r"
awk -v t="$t" -v j="$j" -v p="$p" -v r="$r" 'BEGIN {
  printf "readelf/verify = %.2f (portable %.2f); json/text = %.2f\n", r / t, r / p, j / t }'

if [ -z "${KPATCH_SRC:-}" ] || [ -z "${KPATCH_UNIT:-}" ]; then
  echo "diff: KPATCH_SRC and KPATCH_UNIT not set, left out"; exit 0
fi
make -s -C "$KPATCH_SRC/kpatch-build" create-diff-object >/dev/null
cdo=$KPATCH_SRC/kpatch-build/create-diff-object
units=$KPATCH_UNIT/ppc64le
# What kpatch's unit-test Makefile gives create-diff-object for ppc64le, and a pair's own .env on top: exported in a
# subshell that then becomes create-diff-object (through env(1) it paid a second process start: 4 ms of its 9). Each
# tool runs the same way, a subshell exec'ing it.
cdo_env=(BUG_STRUCT_SIZE=24 EX_STRUCT_SIZE=8 FIXUP_STRUCT_SIZE=48 JUMP_STRUCT_SIZE=24)
kpatch_pair() {
  local name=$1 patched=$2 extra=()
  [ -f "$units/$name.env" ] && read -r -a extra < "$units/$name.env"
  (export "${cdo_env[@]}" "${extra[@]}"; exec "$cdo" "$units/$name.ORIG.o" "$patched" vmlinux "$work/$name.symtab" \
    /dev/null "test_$name" "$work/kp.o")
}
ours_pair() { (exec "$installed" diff "$units/$1.ORIG.o" "$2" -o "$work/ours.o"); }
portable_pair() { (portable diff "$units/$1.ORIG.o" "$2" -o "$work/ours.o"); }
# What starting costs, nothing done: the tool printing its version, create-diff-object its usage, and the floor of
# any .NET program: a Native AOT hello world with the tool's start-up settings.
ours_start() { (exec "$installed" --version); }
kpatch_start() { (exec "$cdo"); }
mkdir -p "$work/hello"
printf '%s\n' '<Project Sdk="Microsoft.NET.Sdk"><PropertyGroup><OutputType>Exe</OutputType>' \
  '<TargetFramework>net10.0</TargetFramework><PublishAot>true</PublishAot><InvariantGlobalization>true</InvariantGlobalization>' \
  '<IlcDehydrate>false</IlcDehydrate><PositionIndependentExecutable>false</PositionIndependentExecutable>' \
  '<CppCompilerAndLinker>gcc</CppCompilerAndLinker></PropertyGroup></Project>' > "$work/hello/hello.csproj"
echo 'System.Console.WriteLine("hello");' > "$work/hello/Program.cs"
(cd "$work/hello" && dotnet publish -c Release -r linux-x64 -o out -nologo -v quiet >/dev/null)
hello_start() { (exec "$work/hello/out/hello"); }

pairs=0; total_ours=0; total_portable=0; total_kpatch=0
for orig in "$units"/*.ORIG.o; do
  name=$(basename "$orig" .ORIG.o)
  patched=$units/$name.PATCHED.o; [ -f "$patched" ] || patched=$units/$name.PATCHED.FAIL.o
  readelf -s --wide "$orig" | sed -r 's/\s+\[<localentry>: 8\]//' > "$work/$name.symtab"
  o=$(median ours_pair "$name" "$patched"); q=$(median portable_pair "$name" "$patched")
  k=$(median kpatch_pair "$name" "$patched")
  pairs=$((pairs + 1))
  total_ours=$(awk -v a="$total_ours" -v b="$o" 'BEGIN { print a + b }')
  total_portable=$(awk -v a="$total_portable" -v b="$q" 'BEGIN { print a + b }')
  total_kpatch=$(awk -v a="$total_kpatch" -v b="$k" 'BEGIN { print a + b }')
done
os=$(median ours_start); ks=$(median kpatch_start); hs=$(median hello_start)
awk -v n="$pairs" -v o="$total_ours" -v q="$total_portable" -v k="$total_kpatch" -v os="$os" -v ks="$ks" -v hs="$hs" 'BEGIN {
  printf "diff over %d kpatch ppc64le unit pairs (one process each), sum of medians: installed %.3f s, portable %.3f s, create-diff-object %.3f s\n", n, o, q, k
  printf "create-diff-object/installed = %.2f (the installed tool is %.2fx its speed); portable %.2f\n", k / o, k / o, k / q
  printf "per pair: installed %.1f ms, create-diff-object %.1f ms; starting alone: installed %.1f ms (--version), create-diff-object %.1f ms (its usage)\n", 1000 * o / n, 1000 * k / n, 1000 * os, 1000 * ks
  printf "past their starts: installed %.1f ms a pair, create-diff-object %.1f ms\n", 1000 * (o / n - os), 1000 * (k / n - ks)
  printf ".NET Native AOT hello world: %.1f ms (= %.2f of create-diff-object'"'"'s whole pair)\n", 1000 * hs, hs / (k / n) }'
