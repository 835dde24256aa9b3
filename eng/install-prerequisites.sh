#!/usr/bin/env bash
# Installs, with apt, what building and testing PpcLivepatch.Build needs; with --test also what only the tests use
# (npm and the SARIF validator). Idempotent: a machine that already has everything is left alone (no apt-get
# update, no network).
set -euo pipefail
for_tests=false
[ "${1:-}" = --test ] && for_tests=true

if ! command -v dotnet >/dev/null 2>&1; then
  echo "install-prerequisites: the .NET SDK 10 is required (dotnet not on PATH); install it from your distribution or Microsoft's packages" >&2
  exit 1
fi

packages=(
  gcc                                                       # host objects for wrong-machine tests
  libc6-dev                                                 # and the native (ahead-of-time compiled) ppc-livepatch the SDK ships: gcc links it
  qemu-user                                                 # runs patched ppc64 programs (linker + emulator oracle)
  libc6-dev-ppc64el-cross libc6-dev-ppc64-cross             # cross C libraries to link those programs
  csmith libcsmith-dev                                      # random programs (and their csmith.h) for the semantic-preservation oracle
  clang-14 llvm-14                                          # the second compiler (its jump tables and DWARF differ from GCC's), and LLVM's readers
  gcc-powerpc64le-linux-gnu binutils-powerpc64le-linux-gnu   # ELFv2 little-endian fixtures and oracles
  gcc-powerpc64-linux-gnu binutils-powerpc64-linux-gnu       # ELFv1 big-endian fixtures and oracles
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross               # the tool package's linux-arm64 native build: clang-14 links it with these
)
if $for_tests; then packages+=(npm); fi                      # installs the SARIF validator below
if $for_tests; then packages+=(python3); fi                  # the tests' ELF editor (tests/fixtures/elfedit.py), a lock holder
if $for_tests; then packages+=(strace); fi                   # sees which of the tool's writes are flushed to disk

missing=()
for p in "${packages[@]}"; do
  # npm may come with a Node.js of another origin (NodeSource, nvm): any npm on PATH will do.
  if [ "$p" = npm ] && command -v npm >/dev/null 2>&1; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "install-prerequisites: installing ${missing[*]}" >&2
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! $for_tests; then exit 0; fi

# The SARIF validator the tests check every SARIF we write with (npm's @microsoft/sarif-multitool), in a cache
# outside the repository. Its Linux package's postinstall only marks the binary executable: done here, so npm's
# install-script policy does not matter.
sarif_dir=${PPCLP_SARIF_MULTITOOL_DIR:-$HOME/.cache/ppclivepatch-sarif-multitool}
sarif_version=5.7.0
if [ ! -x "$sarif_dir/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool" ] \
   || ! grep -q "\"version\": \"$sarif_version\"" "$sarif_dir/node_modules/@microsoft/sarif-multitool/package.json" 2>/dev/null; then
  echo "install-prerequisites: installing @microsoft/sarif-multitool@$sarif_version into $sarif_dir" >&2
  mkdir -p "$sarif_dir"
  npm install --prefix "$sarif_dir" --no-audit --no-fund --loglevel=error "@microsoft/sarif-multitool@$sarif_version" >/dev/null
  chmod u+x "$sarif_dir/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool"
fi
