#!/usr/bin/env bash
# The two commands of the README:
#   ./build.sh        install prerequisites, build, and run `ppc-livepatch verify` on the sample objects
#   ./build.sh test   install prerequisites and run every test; ends with "N passed, N failed"
set -euo pipefail
cd "$(dirname "$0")"
root=$PWD

./eng/install-prerequisites.sh
mkdir -p artifacts/packages   # the local feed nuget.config names must exist for restore

cli=artifacts/bin/ppc-livepatch/ppc-livepatch.dll

build() {
  dotnet build PpcLivepatch.Build.sln -c Release -nologo -v quiet -clp:NoSummary
  dotnet publish src/Cli -c Release -nologo -v quiet -o artifacts/bin/ppc-livepatch >/dev/null
}

sample() {
  build
  local objs=tests/fixtures/elf
  echo
  echo "== A kpatch-style object straight from the compiler: every external call has its nop"
  dotnet "$cli" verify "$objs/livepatch.kpatch.le.o" || true
  echo
  echo "== The same code as a livepatch: the copied static helpers became .klp.sym.vmlinux.* symbols, and the"
  echo "   calls GCC compiled as local (no nop) are what the kernel refuses"
  local rc=0
  dotnet "$cli" verify "$objs/livepatch.klp.le.o" || rc=$?
  echo
  echo "verify exited with $rc (1 = the kernel would refuse the module, as expected for this object)"
  echo "CLI: dotnet $cli verify --help"
}

run_tests() {
  local results=$root/artifacts/test-results
  rm -rf "$results"
  local rc=0
  dotnet test PpcLivepatch.Build.sln -c Release -nologo \
    --logger "trx;LogFileName=results.trx" --results-directory "$results" || rc=$?
  local passed=0 failed=0 trx
  for trx in "$results"/*.trx; do
    [ -f "$trx" ] || continue
    local counters
    counters=$(grep -o '<Counters [^>]*' "$trx" | head -n 1)
    passed=$((passed + $(sed -E 's/.* passed="([0-9]+)".*/\1/' <<<"$counters")))
    failed=$((failed + $(sed -E 's/.* failed="([0-9]+)".*/\1/' <<<"$counters")))
  done
  if [ "$passed" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$rc" -ne 0 ]; then failed=1; fi
  echo "$passed passed, $failed failed"
  return "$rc"
}

case "${1:-}" in
  "") sample ;;
  test) run_tests ;;
  *) echo "usage: ./build.sh [test]" >&2; exit 2 ;;
esac
