#!/usr/bin/env bash
# Installs everything treg needs on a fresh Debian 12, as root, idempotently and without prompts:
#   - the Debian packages of scripts/packages-bookworm.txt (LibTorch 1.13 CPU, OpenBLAS, C++ libraries,
#     python3-torch for independent golden values, ccache);
#   - OpenBLAS (OpenMP) selected as libblas.so.3: the reference BLAS is far slower;
#   - a static sentencepiece built from Debian's source package (scripts/build_sentencepiece.sh), since
#     Debian 12's shared one crashes next to libtorch;
#   - the minja headers (Jinja chat templates) from Debian sid's libminja-dev (scripts/fetch_minja.sh):
#     Debian 12 has no package of it.
# TREG_DEPS_PREFIX (default /opt/treg-deps) says where the static sentencepiece and minja go.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
cd "$(dirname "$0")"
PREFIX=${TREG_DEPS_PREFIX:-/opt/treg-deps}
SPM_VERSION=0.1.97

if [ "$(id -u)" != 0 ]; then
  echo "scripts/setup.sh must run as root (it installs Debian packages)." >&2
  exit 1
fi

# The package names, comments and blank lines dropped.
read -r -a PACKAGES <<< "$(sed 's/#.*//' packages-bookworm.txt | tr '\n' ' ')"
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing: ${missing[*]}"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# LibTorch calls whatever libblas.so.3 is selected.
for alt in libblas.so.3-x86_64-linux-gnu liblapack.so.3-x86_64-linux-gnu; do
  cand=$(update-alternatives --list "$alt" 2>/dev/null | grep openblas-openmp | head -1 || true)
  [ -n "$cand" ] && update-alternatives --set "$alt" "$cand" > /dev/null
done

if [ ! -f "$PREFIX/lib/libsentencepiece.a" ] || [ ! -f "$PREFIX/.spm-$SPM_VERSION" ]; then
  bash build_sentencepiece.sh "$PREFIX"
fi
if [ ! -f "$PREFIX/usr/include/minja/minja.hpp" ] || [ ! -f "$PREFIX/.minja" ]; then
  bash fetch_minja.sh "$PREFIX"
fi
echo "[setup] done"
