#!/usr/bin/env bash
# The two commands of the README:
#   ./build.sh        install prerequisites, build, pack the SDK, build samples/KernelLivepatch with it
#   ./build.sh test   install prerequisites (and the kernel oracle), run every test; ends with "N passed, N failed"
#   ./build.sh pack   install prerequisites, pack the SDK, the ppc-livepatch tool and the dotnet new template into
#                     artifacts/packages (the SDK is what bench/sdk-build.sh builds with)
set -euo pipefail
cd "$(dirname "$0")"
root=$PWD

./eng/install-prerequisites.sh
mkdir -p artifacts/packages   # the local feed nuget.config names must exist for restore

cli=artifacts/bin/ppc-livepatch/ppc-livepatch.dll
version=$(sed -nE 's/.*"PpcLivepatch\.Build\.Sdk" *: *"([^"]+)".*/\1/p' global.json)

build() {
  dotnet build PpcLivepatch.Build.sln -c Release -nologo -v quiet -clp:NoSummary
  # ReadyToRun: the CLI is started once per file by Makefiles, so JIT time matters (verify of one object: 50 -> 30 ms).
  dotnet publish src/Cli -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true -nologo -v quiet -o artifacts/bin/ppc-livepatch >/dev/null
}

# Packs the SDK into the local feed. NuGet never re-extracts a version it has cached, so the cached copy of this
# version goes first: a re-packed SDK must not lose to a stale one.
# The packages name the repository they come from when this clone's remote is a public (http/https) one.
repository_url=$(git config --get remote.origin.url 2>/dev/null || true)
pack_properties=()
if [[ "$repository_url" =~ ^https?:// ]]; then pack_properties=("-p:RepositoryUrl=$repository_url"); fi

pack_sdk() {
  dotnet pack src/Sdk -c Release -nologo -v quiet -o artifacts/packages "${pack_properties[@]}" >/dev/null
  rm -rf "${NUGET_PACKAGES:-$HOME/.nuget/packages}/ppclivepatch.build.sdk/$version"
}

# Everything a user installs: the SDK, the ppc-livepatch .NET tool (dotnet tool install: the pointer package and one
# package per runtime identifier, Native AOT for linux-x64 and linux-arm64, portable for the rest) and the dotnet new
# template.
pack_all() {
  pack_sdk
  dotnet pack src/Cli -c Release -nologo -v quiet -o artifacts/packages "${pack_properties[@]}" >/dev/null
  dotnet pack src/Templates -c Release -nologo -v quiet -o artifacts/packages "${pack_properties[@]}" >/dev/null
  local cache=${NUGET_PACKAGES:-$HOME/.nuget/packages} id
  for id in cli cli.linux-x64 cli.linux-arm64 cli.any templates; do rm -rf "$cache/ppclivepatch.$id/$version"; done
  ls artifacts/packages/*."$version".*nupkg
}

sample() {
  build
  pack_sdk
  echo
  echo "== dotnet build samples/KernelLivepatch (PpcLivepatch.Build.Sdk $version from artifacts/packages)"
  dotnet build samples/KernelLivepatch -nologo -tl:off -clp:NoSummary
  local module=samples/KernelLivepatch/bin/Debug/livepatch_cmdline.o
  local compiled=samples/KernelLivepatch/obj/Debug/livepatch/compile/livepatch.o
  echo
  echo "module: $module"
  echo "the call to the KlpSymbol copy and the nop the assembler route put after it ($compiled):"
  powerpc64le-linux-gnu-objdump -dr "$compiled" | grep -B1 -A1 'R_PPC64_REL24.*version_proc_show' 
  echo
  echo "verify it again with the CLI: dotnet $cli verify $module"
  dotnet "$cli" verify "$module"
}

run_tests() {
  local results=$root/artifacts/test-results
  rm -rf "$results"
  # The real-kernel oracle: Debian's ppc64le kernel and a small CONFIG_LIVEPATCH kernel built from Debian's source,
  # cached outside the repository (a few minutes the first time on a machine, nothing afterwards).
  eng/install-prerequisites.sh --test
  eng/kernel-oracle/setup.sh --klp
  # The newer kernel lines, built by Debian 13's GCC 14 in a Debian 13 environment (debootstrap): 6.12 (two patchable
  # nops at each entry) and 7.2 (ftrace out of line). About 25 minutes the first time on 2 cores, nothing afterwards.
  eng/kernel-oracle/setup-line.sh 6.12
  eng/kernel-oracle/setup-line.sh 7.2
  build
  pack_sdk
  local rc=0
  dotnet test PpcLivepatch.Build.sln -c Release -nologo \
    --logger "trx;LogFilePrefix=results" --results-directory "$results" || rc=$?
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
  pack) pack_all ;;
  *) echo "usage: ./build.sh [test|pack]" >&2; exit 2 ;;
esac
