#!/usr/bin/env bash
# Builds a static sentencepiece from Debian's source package into PREFIX (default /opt/treg-deps).
#   Debian 12's shared libsentencepiece bundles protobuf-lite 3.14, which crashes any process that
#   also loads libtorch's protobuf 3.21; the static build links the system protobuf instead.
# Usage: scripts/build_sentencepiece.sh [PREFIX]     (root: it may add a deb-src entry to apt)
# The source version is looked up with apt-cache showsrc (apt-get source takes no wildcard) and
# must be 0.1.97-*, the release this build recipe is written for.
set -euo pipefail
PREFIX=${1:-${TREG_DEPS_PREFIX:-/opt/treg-deps}}
SPM_VERSION=0.1.97

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A private deb-src list for this release: the machine's own apt sources stay untouched (adding a
# one-line entry next to deb822 ones with Signed-By makes apt refuse all of them).
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
mkdir -p "$work/lists/partial" "$work/parts"
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" > "$work/src.list"
APT=(-o Dir::Etc::SourceList="$work/src.list" -o Dir::Etc::SourceParts="$work/parts"
  -o Dir::State::Lists="$work/lists" -o APT::Sandbox::User=root)
apt-get "${APT[@]}" update -q > "$work/update.log" 2>&1 || {
  cat "$work/update.log" >&2
  exit 1
}
src_version=$(apt-cache "${APT[@]}" showsrc sentencepiece | sed -n "s/^Version: \(${SPM_VERSION//./\\.}-[^ ]*\)$/\1/p" | sort -V | tail -1)
if [ -z "$src_version" ]; then
  echo "[sentencepiece] no source package sentencepiece $SPM_VERSION-* for $suite;" \
    "found: $(apt-cache "${APT[@]}" showsrc sentencepiece | sed -n 's/^Version: //p' | tr '\n' ' ')" >&2
  exit 1
fi
echo "[sentencepiece] building static sentencepiece $src_version into $PREFIX"
cd "$work"
apt-get "${APT[@]}" source -q "sentencepiece=$src_version" > source.log 2>&1 || {
  cat source.log >&2
  exit 1
}
cd "sentencepiece-$SPM_VERSION"
# Debian removes the static targets; bring them back and use the system protobuf headers.
patch -s -R -p1 < debian/patches/disable-static-library.patch
sed -i 's|#include "third_party/protobuf-lite/google/protobuf/message_lite.h"|#include <google/protobuf/message_lite.h>|' src/init.h
# ccache, where installed, serves a rebuild of the same source (tests/install_steps.sh in CI); the
# source lies in a new temp folder each time, hence BASEDIR and NOHASHDIR.
launcher=()
if command -v ccache > /dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$PREFIX" "${launcher[@]}" \
  -DSPM_ENABLE_SHARED=OFF -DSPM_USE_BUILTIN_PROTOBUF=OFF -DSPM_ENABLE_TCMALLOC=OFF \
  -DCMAKE_POSITION_INDEPENDENT_CODE=ON > build.log 2>&1 || {
  tail -30 build.log >&2
  exit 1
}
cmake --build build -j"$(nproc)" >> build.log 2>&1 || {
  tail -30 build.log >&2
  exit 1
}
cmake --install build >> build.log 2>&1
test -f "$PREFIX/lib/libsentencepiece.a" && test -f "$PREFIX/lib/libsentencepiece_train.a"
touch "$PREFIX/.spm-$SPM_VERSION"
echo "[sentencepiece] done: $PREFIX/lib/libsentencepiece.a"
