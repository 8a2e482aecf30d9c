#!/usr/bin/env bash
# Installs everything treg needs on a fresh Debian 12, as root, idempotently and without prompts.
#   - Debian packages: LibTorch 1.13 (CPU), OpenBLAS (OpenMP flavour), the C++ libraries, python3-torch
#     (independent golden values in the tests), ccache.
#   - A static sentencepiece 0.1.97 built from Debian's source package against the system protobuf
#     (Debian's shared libsentencepiece bundles protobuf-lite 3.14, which crashes any process that
#     also loads libtorch's protobuf 3.21).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PREFIX=${TREG_DEPS_PREFIX:-/opt/treg-deps}
SPM_VERSION=0.1.97

if [ "$(id -u)" != 0 ]; then
  echo "scripts/setup.sh must run as root (it installs Debian packages)." >&2
  exit 1
fi

PACKAGES=(build-essential cmake pkg-config ccache git
  libtorch-dev libgloo-dev libopenblas0-openmp
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libgtest-dev libgmock-dev
  libpcre2-dev libicu-dev libprotobuf-dev protobuf-compiler
  python3-torch python3-numpy dpkg-dev)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing: ${missing[*]}"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# LibTorch calls whatever libblas.so.3 is selected; the reference BLAS is ~30x slower.
for alt in libblas.so.3-x86_64-linux-gnu liblapack.so.3-x86_64-linux-gnu; do
  cand=$(update-alternatives --list "$alt" 2>/dev/null | grep openblas-openmp | head -1 || true)
  [ -n "$cand" ] && update-alternatives --set "$alt" "$cand" >/dev/null
done

if [ ! -f "$PREFIX/lib/libsentencepiece.a" ] || [ ! -f "$PREFIX/.spm-$SPM_VERSION" ]; then
  echo "[setup] building static sentencepiece $SPM_VERSION into $PREFIX"
  src_list=/etc/apt/sources.list.d/treg-deb-src.sources
  if ! grep -rqs "deb-src" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    cat > "$src_list" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -q
  fi
  work=$(mktemp -d)
  (
    cd "$work"
    apt-get source -q "sentencepiece=$SPM_VERSION*" 2>&1 | tail -2
    cd sentencepiece-$SPM_VERSION
    # Debian removes the static targets; bring them back and use the system protobuf headers.
    patch -R -p1 < debian/patches/disable-static-library.patch
    sed -i 's|#include "third_party/protobuf-lite/google/protobuf/message_lite.h"|#include <google/protobuf/message_lite.h>|' src/init.h
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$PREFIX" \
      -DSPM_ENABLE_SHARED=OFF -DSPM_USE_BUILTIN_PROTOBUF=OFF -DSPM_ENABLE_TCMALLOC=OFF \
      -DCMAKE_POSITION_INDEPENDENT_CODE=ON > build.log
    cmake --build build -j"$(nproc)" >> build.log
    cmake --install build >> build.log
  )
  rm -rf "$work"
  touch "$PREFIX/.spm-$SPM_VERSION"
fi
echo "[setup] done"
