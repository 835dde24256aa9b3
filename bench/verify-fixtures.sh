#!/usr/bin/env bash
# Times `ppc-livepatch verify` against `readelf -rW` and `cat` over the same files, in one go on one machine.
#   bench/verify-fixtures.sh [ROUNDS] [FILE...]     (default: 20 rounds over tests/fixtures/elf/*.o)
# Each round is one process per tool over all files; the figure is the median round, in milliseconds.
set -euo pipefail
rounds=${1:-20}; shift || true
files=()
for f in "$@"; do files+=("$(realpath "$f")"); done
cd "$(dirname "$0")/.."
[ ${#files[@]} -gt 0 ] || files=(tests/fixtures/elf/*.o)
cli=artifacts/bin/ppc-livepatch/ppc-livepatch.dll
[ -f "$cli" ] || dotnet publish src/Cli -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true -nologo -v quiet -o artifacts/bin/ppc-livepatch >/dev/null

median_ms() { # median_ms CMD...: median wall time of $rounds runs
  local t=() i s e
  for ((i = 0; i < rounds; i++)); do
    s=$(date +%s%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s%N)
    t+=($(((e - s) / 1000)))
  done
  printf '%s\n' "${t[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}'
}

bytes=$(cat "${files[@]}" | wc -c)
echo "files: ${#files[@]}, bytes: $bytes, rounds: $rounds"
v=$(median_ms dotnet "$cli" verify --format json "${files[@]}")
h=$(median_ms dotnet "$cli" --help)
r=$(median_ms powerpc64le-linux-gnu-readelf -rW "${files[@]}")
c=$(median_ms cat "${files[@]}")
echo "verify (one process): ${v} ms"
echo "  of which .NET start:  ${h} ms (ppc-livepatch --help)"
echo "readelf -rW:          ${r} ms"
echo "cat:                  ${c} ms"
awk -v v="$v" -v r="$r" -v c="$c" 'BEGIN { printf "verify/readelf: %.2f   verify/cat: %.1f\n", v / r, v / c }'
peak=$( { /usr/bin/time -f '%M' dotnet "$cli" verify "${files[@]}" >/dev/null; } 2>&1 | tail -n 1 ) || true
echo "verify peak RSS: ${peak} KiB"
