#!/usr/bin/env bash
# Prints one line per (fixture, command): the SHA-256 of every output the CLI writes for it — the patched object and
# its text, JSON and SARIF reports under each strategy and site selection, and verify's reports. Two runs of this
# script on two trees that must behave the same (a refactoring) must print the same lines:
#   eng/output-snapshot.sh > before.txt; …change…; eng/output-snapshot.sh > after.txt; diff before.txt after.txt
# Paths are made relative first, so the lines do not depend on where the tree or the temporary directory is.
set -euo pipefail
cd "$(dirname "$0")/.."
cli=${PPCLP_CLI:-artifacts/bin/ppc-livepatch/ppc-livepatch.dll}
# A fixed directory: SARIF names files by absolute URI, so the directory must be the same in both runs.
work=${TMPDIR:-/tmp}/ppclp-output-snapshot-${PPCLP_SNAPSHOT_SLOT:-0}
rm -rf "$work" && mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
# Help links name the docs next to the tree's CLI: the tree's own path is not part of the output being compared.
root=$PWD
hash() { sed "s|$root|REPO|g" | sha256sum | cut -c1-16; }
for fixture in tests/fixtures/elf/*.o; do
  name=$(basename "$fixture")
  cp "$fixture" "$work/$name"
  for format in text json sarif; do
    (cd "$work" && dotnet "$OLDPWD/$cli" verify --format "$format" "$name" 2>&1 || true) | hash | sed "s|^|$name verify $format |"
  done
  for strategy in auto insert-nop island; do
    for sites in needed all-local; do
      for format in text json sarif; do
        rm -f "$work/out.o"
        report=$( (cd "$work" && dotnet "$OLDPWD/$cli" patch --strategy "$strategy" --sites "$sites" --format "$format" \
                   -o out.o "$name" 2>&1; echo "exit $?") | hash)
        object=$([ -f "$work/out.o" ] && sha256sum < "$work/out.o" | cut -c1-16 || echo none)
        echo "$name patch $strategy $sites $format report $report object $object"
      done
    done
  done
done
