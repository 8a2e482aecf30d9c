#!/usr/bin/env bash
# Configures and builds treg into ./build (ccache and a precompiled LibTorch header keep rebuilds fast).
# Usage: scripts/build.sh [--target NAME]... [cmake configure arguments, e.g. -DCMAKE_PREFIX_PATH=...]
#   --target treg builds only the executable (scripts/run_tiny.sh); no --target builds everything.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${TREG_BUILD_DIR:-build}
targets=() configure=()
while [ $# -gt 0 ]; do
  case "$1" in
    --target) targets+=(--target "$2"); shift 2 ;;
    *) configure+=("$1"); shift ;;
  esac
done
export CCACHE_BASEDIR="$PWD" CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release "${configure[@]}" > /dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" "${targets[@]}"
