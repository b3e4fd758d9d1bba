#!/usr/bin/env bash
# Build kube-apiserver and kube-controller-manager for the real-server test tier.
#
# No package registry reachable from the build machines ships Kubernetes server binaries, but
# Debian bookworm's *source* package `kubernetes` is the full upstream tree with `vendor/`, so
# it builds offline with Debian's Go. This script:
#   1. checks what it needs (apt-get source from a bookworm deb-src line, dpkg-dev, Go 1.19,
#      make, etcd on PATH for the tests) and says exactly what is missing;
#   2. fetches the source once into the cache folder (never inside the clone);
#   3. builds the two binaries once into
#        ${FORGEBOT_KUBE_CACHE:-~/.cache/forgebot/kube}/<debian-source-version>-go<go-version>/bin
#      and does nothing when they are already there.
# The last line it prints is the folder holding the binaries (tests find it on their own; set
# FORGEBOT_KUBE_BIN_DIR to point them elsewhere).
#
# Options: --add-deb-src   add a deb-src line for bookworm when none is configured (needs root)
#          --print-dir     print the cache folder the binaries go to, and exit
set -euo pipefail

SOURCE_PACKAGE=kubernetes
DEBIAN_SUITE=bookworm
GO_VERSION_WANTED=1.19
GO_DIR_DEFAULT=/usr/lib/go-${GO_VERSION_WANTED}/bin
CACHE_ROOT=${FORGEBOT_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/forgebot/kube}
BINARIES=(kube-apiserver kube-controller-manager)

add_deb_src=false
print_dir=false
for arg in "$@"; do
  case "$arg" in
    --add-deb-src) add_deb_src=true ;;
    --print-dir) print_dir=true ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "kube-binaries: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

say() { printf 'kube-binaries: %s\n' "$*" >&2; }
die() { printf 'kube-binaries: ERROR: %s\n' "$*" >&2; exit 1; }

# --- Go -------------------------------------------------------------------------------------
if [ -x "$GO_DIR_DEFAULT/go" ]; then
  export PATH="$GO_DIR_DEFAULT:$PATH"
fi
command -v go >/dev/null 2>&1 || die "Go is missing. Kubernetes 1.20 builds with Debian's \
golang-${GO_VERSION_WANTED}-go: apt-get install -y golang-${GO_VERSION_WANTED}-go \
(it installs to $GO_DIR_DEFAULT)."
go_version=$(go env GOVERSION)   # e.g. go1.19.8
case "$go_version" in
  go${GO_VERSION_WANTED}|go${GO_VERSION_WANTED}.*) ;;
  *) say "warning: $go_version is not Go ${GO_VERSION_WANTED}; building Kubernetes 1.20 with it is untested." ;;
esac

# --- Debian source version -------------------------------------------------------------------
command -v apt-cache >/dev/null 2>&1 || die "apt-cache is missing: this script needs a Debian \
${DEBIAN_SUITE} (or compatible) machine to fetch the ${SOURCE_PACKAGE} source package."

has_deb_src() {
  grep -rqsE '^(deb-src|Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null
}
source_version() {
  apt-cache showsrc "$SOURCE_PACKAGE" 2>/dev/null | awk '/^Version:/ {print $2}' | sort -V | tail -1
}

version=$(source_version || true)
if [ -z "$version" ]; then
  if ! has_deb_src && $add_deb_src; then
    [ "$(id -u)" = 0 ] || die "--add-deb-src needs root to write /etc/apt/sources.list.d/."
    say "adding a deb-src line for ${DEBIAN_SUITE} (/etc/apt/sources.list.d/forgebot-kube-src.list)"
    # Same Signed-By as the machine's deb lines, or apt refuses the conflicting values.
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    signed=""
    [ -f "$keyring" ] && signed=" [signed-by=$keyring]"
    echo "deb-src${signed} http://deb.debian.org/debian ${DEBIAN_SUITE} main" \
      > /etc/apt/sources.list.d/forgebot-kube-src.list
    apt-get update -qq
    version=$(source_version || true)
  fi
fi
[ -n "$version" ] || die "apt knows no source package '${SOURCE_PACKAGE}'. Add a deb-src line for \
Debian ${DEBIAN_SUITE}, for example
    echo 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian ${DEBIAN_SUITE} main' \\
      > /etc/apt/sources.list.d/forgebot-kube-src.list
    apt-get update
or rerun this script as root with --add-deb-src."

# Kubernetes 1.20 vendors reflect2 1.0.1, whose unsafe map iteration crashes (SIGSEGV in
# reflect2.UnsafeIterate) under Go 1.18 and later the first time the API server encodes a custom
# resource. Debian ships the fixed 1.0.2 as golang-github-modern-go-reflect2-dev; the build uses
# it in place of the vendored copy, and the cache key says so.
REFLECT2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2
src_key="${version//[:~]/_}-${go_version}"
key="${src_key}-reflect2_1.0.2"
dest="$CACHE_ROOT/$key"
if $print_dir; then echo "$dest/bin"; exit 0; fi

all_present() {
  for b in "${BINARIES[@]}"; do [ -x "$dest/bin/$b" ] || return 1; done
}
if all_present; then
  say "cached: $dest/bin (Debian ${SOURCE_PACKAGE} $version, $go_version)"
  echo "$dest/bin"
  exit 0
fi

command -v dpkg-source >/dev/null 2>&1 || die "dpkg-source is missing: apt-get install -y dpkg-dev"
command -v make >/dev/null 2>&1 || die "make is missing: apt-get install -y make"
command -v rsync >/dev/null 2>&1 || say "note: rsync is not installed; the Kubernetes build prints a warning about it and carries on."
command -v etcd >/dev/null 2>&1 || say "note: etcd is not on PATH; the tests need it too: apt-get install -y etcd-server"

# --- source ----------------------------------------------------------------------------------
# Upstream version: Debian spells a downgrade "1.20.5+really1.20.2-1.1+deb12u1".
upstream=${version#*:}
upstream=${upstream%-*}
upstream=${upstream##*+really}
upstream=${upstream%%+*}
work="$CACHE_ROOT/src/$src_key"
mkdir -p "$work"
tree=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name "${SOURCE_PACKAGE}-*" | head -1)
if [ -z "$tree" ] || [ ! -f "$tree/Makefile" ]; then
  say "fetching the ${SOURCE_PACKAGE} $version source into $work (about 30 MB download)"
  rm -rf "${work:?}"/*
  (cd "$work" && apt-get source -qq "${SOURCE_PACKAGE}=${version}") \
    || die "apt-get source ${SOURCE_PACKAGE}=${version} failed (is the Debian mirror reachable?)"
  tree=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name "${SOURCE_PACKAGE}-*" | head -1)
  [ -n "$tree" ] || die "apt-get source produced no ${SOURCE_PACKAGE}-* folder in $work"
fi

# --- the reflect2 fix (see REFLECT2_SRC above) ----------------------------------------------
[ -f "$REFLECT2_SRC/go_above_118.go" ] || die "reflect2 1.0.2 is missing: apt-get install -y \
golang-github-modern-go-reflect2-dev (Kubernetes 1.20's vendored 1.0.1 crashes under Go 1.18+)."
vendored="$tree/vendor/github.com/modern-go/reflect2"
if [ ! -f "$vendored/go_above_118.go" ]; then
  say "replacing the vendored reflect2 1.0.1 with Debian's 1.0.2"
  find "$vendored" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) -delete
  cp "$REFLECT2_SRC"/*.go "$REFLECT2_SRC"/*.s "$vendored/"
  find "$vendored" -maxdepth 1 -type f -name '*_test.go' -delete
fi

# --- build -----------------------------------------------------------------------------------
# The tarball has no .git, so the version stamped into the binaries comes from this file.
version_file="$work/kube-version.env"
cat > "$version_file" <<EOF
KUBE_GIT_COMMIT=''
KUBE_GIT_TREE_STATE='archive'
KUBE_GIT_VERSION='v${upstream}'
KUBE_GIT_MAJOR='${upstream%%.*}'
KUBE_GIT_MINOR='$(echo "$upstream" | cut -d. -f2)'
EOF
export KUBE_GIT_VERSION_FILE="$version_file"
mkdir -p "$dest/bin"
for b in "${BINARIES[@]}"; do
  if [ -x "$dest/bin/$b" ]; then continue; fi
  say "building $b v${upstream} with $go_version (the first build takes 10 minutes or more on 2 cores)"
  started=$(date +%s)
  (cd "$tree" && make WHAT="cmd/$b" >&2) || die "make WHAT=cmd/$b failed in $tree (see the output above)"
  built=$(find "$tree/_output" -type f -name "$b" -perm -u+x | head -1)
  [ -n "$built" ] || die "make WHAT=cmd/$b finished but left no $b under $tree/_output"
  install -m 0755 "$built" "$dest/bin/$b.tmp" && mv "$dest/bin/$b.tmp" "$dest/bin/$b"
  say "built $b in $(( $(date +%s) - started )) s"
done
# The tests trust only builds that carry this mark (older ones crash on custom resources).
echo "reflect2 1.0.2" > "$dest/bin/.forgebot-build"
"$dest/bin/kube-apiserver" --version >&2
say "binaries in $dest/bin (the source in $work can be deleted: rm -rf '$work')"
echo "$dest/bin"
