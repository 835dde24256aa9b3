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
# The diff on every fixture pair: its report in each format, the livepatch object and the klp registration, with the
# default symbol source (ORIG.o) and unbound.
for orig in tests/fixtures/diff/pairs/*.orig.o; do
  name=$(basename "$orig" .orig.o)
  cp "$orig" "$work/$name.orig.o"
  cp "${orig%.orig.o}.patched.o" "$work/$name.patched.o"
  for binding in default --unbound; do
    for format in text json sarif; do
      rm -f "$work/out.o" "$work/reg.c"
      extra=(); [ "$binding" = default ] || extra=("$binding")
      report=$( (cd "$work" && dotnet "$OLDPWD/$cli" diff "${extra[@]}" --format "$format" --registration reg.c \
                 -o out.o "$name.orig.o" "$name.patched.o" 2>&1; echo "exit $?") | hash)
      object=$([ -f "$work/out.o" ] && sha256sum < "$work/out.o" | cut -c1-16 || echo none)
      registration=$([ -f "$work/reg.c" ] && sha256sum < "$work/reg.c" | cut -c1-16 || echo none)
      echo "$name diff $binding $format report $report object $object registration $registration"
    done
  done
done
# With PPCLP_SNAPSHOT_KERNEL=<a prepared kernel build tree> (eng/kernel-oracle/setup.sh --klp): the module the
# packed SDK (artifacts/packages) builds from each KernelPatch of the repository, and the one `kernel-patch` builds
# where the CLI has that command.
if [ -n "${PPCLP_SNAPSHOT_KERNEL:-}" ]; then
  version=$(sed -nE 's/.*"PpcLivepatch\.Build\.Sdk" *: *"([^"]+)".*/\1/p' global.json)
  for patch in tests/kernel-patches/*.patch tests/fixtures/diff/patches/version-new-function.patch \
               samples/KernelPatch/stat-livepatched.patch; do
    name=$(basename "$patch" .patch)
    module=lp_$(echo "$name" | tr -- '-' '_' | cut -c1-40)
    project=$work/kp-$name
    mkdir -p "$project"
    cp "$patch" "$project/$name.patch"
    sed "s|artifacts/packages|$root/artifacts/packages|" nuget.config > "$project/nuget.config"
    printf '<Project Sdk="PpcLivepatch.Build.Sdk/%s"><ItemGroup><KernelPatch Include="%s.patch" /></ItemGroup></Project>\n' \
      "$version" "$name" > "$project/$module.csproj"
    status=$( (cd "$project" && NUGET_PACKAGES=$work/nuget dotnet build -nologo -v quiet -p:KernelDir="$PPCLP_SNAPSHOT_KERNEL" \
               -p:LivepatchModuleName="$module" >/dev/null 2>&1; echo $?) )
    ko=$project/bin/Debug/$module.ko
    echo "$name kernel-patch sdk exit $status module $([ -f "$ko" ] && sha256sum < "$ko" | cut -c1-16 || echo none)"
    if dotnet "$cli" kernel-patch --help >/dev/null 2>&1; then
      # The SDK's work directory and module name: the same inputs, so the same bytes.
      status=$( (cd "$project" && dotnet "$root/$cli" kernel-patch --kernel-dir "$PPCLP_SNAPSHOT_KERNEL" \
                 --name "$module" --work-dir obj/Debug/livepatch -o "cli/$module.ko" "$name.patch" >/dev/null 2>&1;
                 echo $?) )
      ko=$project/cli/$module.ko
      echo "$name kernel-patch cli exit $status module $([ -f "$ko" ] && sha256sum < "$ko" | cut -c1-16 || echo none)"
    fi
  done
fi
