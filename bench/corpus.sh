#!/usr/bin/env bash
# Performance on a whole kernel's modules, against reference tools, in one run on one machine:
#   verify:  `ppc-livepatch verify` over every module of Debian's ppc64el kernel (one process)
#            vs `powerpc64le-linux-gnu-readelf -rW` over the same files vs `cat` of the same bytes (the floor)
#   patch:   `ppc-livepatch patch --sites all-local` of the fixture objects vs gcc -O2 compiling their sources
#   memory:  peak RSS of verify, against the largest module's size
# Both builds of the CLI: ReadyToRun on the .NET runtime (the dotnet tool), and ahead-of-time compiled (the native
# ppc-livepatch the SDK package ships for linux-x64).
# Usage: bench/corpus.sh [ROUNDS]   (default 5; the figure is the median round)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
command -v /usr/bin/time >/dev/null || { sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo; $sudo apt-get install -y -qq time >/dev/null; }
# shellcheck source=bench/lib.sh
. bench/lib.sh
list=$(mktemp); trap 'rm -f "$list"' EXIT
corpus_modules "$list"
cli=artifacts/bin/ppc-livepatch/ppc-livepatch.dll
dotnet publish src/Cli -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true -nologo -v quiet -o artifacts/bin/ppc-livepatch >/dev/null
native=artifacts/bin/ppc-livepatch-native/ppc-livepatch
dotnet publish src/Cli -c Release -r linux-x64 -p:PublishAot=true -p:PackAsTool=false -nologo -v quiet -o artifacts/bin/ppc-livepatch-native >/dev/null

files=$(wc -l < "$list"); bytes=$(xargs -a "$list" cat | wc -c); largest=$(xargs -a "$list" stat -c %s | sort -n | tail -n 1)
echo "corpus: $files modules of linux-image-$KO_ABI-powerpc64le, $((bytes / 1048576)) MiB, largest $((largest / 1048576)) MiB; $rounds rounds, median"
verify_all() { dotnet "$cli" verify "${modules[@]}"; }
verify_native() { "$native" verify "${modules[@]}"; }
mapfile -t modules < "$list"
verify_json() { "$native" verify --format json "${modules[@]}" >/dev/null; }
v=$(median verify_all)
vn=$(median verify_native)
vj=$(median verify_json)
r=$(median sh -c "xargs -a '$list' powerpc64le-linux-gnu-readelf -rW")
c=$(median sh -c "xargs -a '$list' cat")
# verify gets all files in one process (the list fits in ARG_MAX); readelf and cat through xargs.
accepted=$(dotnet "$cli" verify "${modules[@]}" | grep -c ': accepted (' || true)
accepted_native=$("$native" verify "${modules[@]}" | grep -c ': accepted (' || true)
peak=$( { /usr/bin/time -f '%M' dotnet "$cli" verify "${modules[@]}" >/dev/null; } 2>&1 | tail -n 1)
peakn=$( { /usr/bin/time -f '%M' "$native" verify "${modules[@]}" >/dev/null; } 2>&1 | tail -n 1)
echo "verify:         $v s   ($accepted of $files accepted)"
echo "verify native:  $vn s   ($accepted_native of $files accepted)"
echo "readelf -rW:    $r s"
echo "cat:            $c s"
awk -v v="$v" -v r="$r" -v c="$c" 'BEGIN { printf "readelf/verify = %.2f (verify is %.2fx faster)   verify/cat = %.1f\n", r / v, r / v, v / c }'
awk -v v="$vn" -v r="$r" -v c="$c" 'BEGIN { printf "native: readelf/verify = %.2f   verify/cat = %.1f\n", r / v, v / c }'
json_bytes=$("$native" verify --format json "${modules[@]}" | wc -c)
echo "verify native --format json: $vj s   ($((json_bytes / 1048576)) MiB, every call site)   json/text = $(awk -v j="$vj" -v t="$vn" 'BEGIN { printf "%.2f", j / t }')"
echo "verify peak RSS: $((peak / 1024)) MiB = $(awk -v p="$peak" -v l="$largest" 'BEGIN { printf "%.1f", p * 1024 / l }') x the largest module; native $((peakn / 1024)) MiB = $(awk -v p="$peakn" -v l="$largest" 'BEGIN { printf "%.1f", p * 1024 / l }') x"

# patch vs compile, on the fixture sources (kpatch-style flags, as the SDK uses).
work=$(mktemp -d); trap 'rm -rf "$work" "$list"' EXIT
flags="-O2 -mcmodel=large -mprofile-kernel -pg -mno-altivec -mno-vsx -msoft-float -fno-common -mcpu=power8 -mno-prefixed -mno-pcrel -ffunction-sections -fdata-sections -g"
compile() { local src; for src in tests/fixtures/src/*.c; do powerpc64le-linux-gnu-gcc $flags -c "$src" -o "$work/$(basename "$src" .c).o"; done; }
patch_all() { local obj; for obj in "$work"/*.o; do dotnet "$cli" patch --sites all-local -o "$obj.p" "$obj" >/dev/null || true; done; }
patch_native() { local obj; for obj in "$work"/*.o; do "$native" patch --sites all-local -o "$obj.p" "$obj" >/dev/null || true; done; }
gc=$(median compile)
pt=$(median patch_all)
ptn=$(median patch_native)
echo "gcc -O2 of $(ls tests/fixtures/src/*.c | wc -l) sources: $gc s;  patch --sites all-local of their objects (one process each): $pt s, native $ptn s"
awk -v g="$gc" -v p="$pt" -v n="$ptn" 'BEGIN { printf "patch/compile = %.1f%%, native %.1f%%\n", 100 * p / g, 100 * n / g }'
