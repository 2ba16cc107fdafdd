# Sourced by deploy/local-images.sh. make_rootfs NAME PACKAGES: a Debian bookworm root filesystem
# (mmdebstrap, variant minbase, from the machine's apt sources) as the directory $WORK/NAME.rootfs. Downloaded .debs
# are kept in $WORK/debs so a second build does not fetch them again (delete $WORK to start over).
make_rootfs() {
  local name="$1" packages="$2" out="$WORK/$1.rootfs"
  [ -d "$out" ] && return 0
  rm -rf "$out.partial"
  mkdir -p "$WORK/debs"
  echo "local-images: building the $name root filesystem (mmdebstrap bookworm: $packages)" >&2
  # The machine's own apt sources (bookworm, -updates, -security), one argument per line.
  local sources=()
  mapfile -t sources < <(apt-get indextargets --format 'deb $(REPO_URI) $(RELEASE) $(COMPONENT)' 'Created-By: Packages' "Architecture: $(dpkg --print-architecture)" | sort -u)
  [ "${#sources[@]}" -gt 0 ] || { echo "local-images: no apt sources found (run apt-get update)" >&2; return 1; }
  mmdebstrap --variant=minbase --format=directory --quiet \
    --include="$packages" \
    --skip=download/empty \
    --setup-hook='mkdir -p "$1/var/cache/apt/archives/"' \
    --setup-hook="find '$WORK/debs' -name '*.deb' -exec cp -t \"\$1/var/cache/apt/archives/\" {} +" \
    --customize-hook="sync-out /var/cache/apt/archives '$WORK/debs'" \
    --customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb' \
    bookworm "$out.partial" "${sources[@]}" </dev/null
  mv "$out.partial" "$out"
}
