#!/usr/bin/env bash
# Configures and builds treg into ./build (ccache and a precompiled LibTorch header keep rebuilds fast).
# Extra arguments go to cmake's configure step, e.g. -DCMAKE_PREFIX_PATH=<pytorch cmake dir>.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${TREG_BUILD_DIR:-build}
export CCACHE_BASEDIR="$PWD" CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release "$@" > /dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
