#!/usr/bin/env bash
# The whole test suite (README command 2; CI runs exactly this), as root on Debian 12:
#   1. installs (scripts/setup.sh) and builds against Debian 12's LibTorch 1.13, then runs ctest:
#      unit tests, smoke tests, the chaos test, a short run of every fuzzer (scripts/fuzz.sh) and
#      every install step from scratch (tests/install_steps.sh);
#   2. scripts/test_sid.sh: builds against LibTorch 2.x in a Debian sid root and runs the unit tests,
#      a smoke test and the comparisons with real Hugging Face transformers/tokenizers.
# Extra arguments go to both ctest runs (e.g. -R tokenizer). TREG_SID=0 skips stage 2 (for quick
# local iterations only: CI runs both).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The sid root downloads and unpacks (network and disk) while Debian 12 builds (CPU).
sid_prepare=
if [ "${TREG_SID:-1}" != 0 ]; then
  mkdir -p "${TREG_BUILD_DIR:-build}"
  bash scripts/test_sid.sh --prepare > "${TREG_BUILD_DIR:-build}/sid-prepare.log" 2>&1 &
  sid_prepare=$!
fi
bash scripts/build.sh -DTREG_INSTALL_TESTS=ON -DTREG_FUZZ_TESTS=ON
failed=()
(cd "${TREG_BUILD_DIR:-build}" && ctest --output-on-failure -j"$(nproc)" "$@") || failed+=("Debian 12 / LibTorch 1.13")
if [ -n "$sid_prepare" ]; then
  if wait "$sid_prepare"; then
    bash scripts/test_sid.sh "$@" || failed+=("Debian sid / LibTorch 2.x + Hugging Face")
  else
    tail -30 "${TREG_BUILD_DIR:-build}/sid-prepare.log"
    failed+=("Debian sid root (debootstrap / apt)")
  fi
fi
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
