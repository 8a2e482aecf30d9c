#!/usr/bin/env bash
# Installs (scripts/setup.sh, as root), builds, and runs the whole test suite through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd "${TREG_BUILD_DIR:-build}"
ctest --output-on-failure -j"$(nproc)" "$@"
