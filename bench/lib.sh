# Shared by the corpus benchmarks (sourced, not run): the Debian module corpus and the median timer.

# corpus_modules LIST: writes the paths of every module of Debian's ppc64el kernel package to LIST, extracting the
# package (downloaded by eng/kernel-oracle/setup.sh, cached outside the repository) the first time.
corpus_modules() {
  eng/kernel-oracle/setup.sh >/dev/null
  # shellcheck disable=SC1091
  . "${PPCLP_KERNEL_CACHE:-$HOME/.cache/ppclivepatch-kernel-oracle}/env.sh"
  local corpus=$KO_DIR/modules-$KO_ABI
  if [ ! -f "$corpus/.extracted" ]; then
    rm -rf "$corpus" && mkdir -p "$corpus"
    dpkg-deb -x "$KO_DIR/$KO_ABI/debs/"linux-image-*.deb "$corpus"
    find "$corpus" -name '*.ko.xz' -exec xz -d {} +   # none in bookworm's image, but later ones compress
    touch "$corpus/.extracted"
  fi
  find "$corpus" -name '*.ko' | sort > "$1"
}

# median CMD...: the median wall seconds of $rounds runs of CMD (its output discarded, its failures ignored). Timed by
# bash's own clock (EPOCHREALTIME, microseconds): a `date` process per reading added its own start to every run.
median() {
  local t=() i start end
  for ((i = 0; i < rounds; i++)); do
    start=${EPOCHREALTIME/./}; "$@" >/dev/null 2>&1 || true; end=${EPOCHREALTIME/./}; t+=($((end - start)))
  done
  printf '%s\n' "${t[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.6f", a[int((NR+1)/2)]/1000000}'
}

# klp_tree: the kernel oracle's CONFIG_LIVEPATCH build tree, prepared (and built the first time); sets $KO_KLP_BUILD
# and the rest of env.sh.
klp_tree() {
  eng/kernel-oracle/setup.sh --klp >/dev/null
  # shellcheck disable=SC1091
  . "${PPCLP_KERNEL_CACHE:-$HOME/.cache/ppclivepatch-kernel-oracle}/env.sh"
  [ -n "${KO_KLP_BUILD:-}" ] || { echo "no CONFIG_LIVEPATCH kernel tree: eng/kernel-oracle/setup.sh --klp failed" >&2; exit 1; }
}
