#!/usr/bin/env bash
# treg on current LibTorch and against real Hugging Face code, in a Debian sid root (debootstrap):
# LibTorch 2.x (C++20), shared sentencepiece 0.2, python3-transformers 5, python3-tokenizers.
# Builds treg and its tests there and runs the unit tests, one smoke test and the real-HF comparisons
# (tests/hf: log-probs vs AutoModelForCausalLM, ids vs tokenizers, chat vs apply_chat_template).
# The root (TREG_SID_ROOT, default /var/cache/treg/sid) and its build tree and ccache are kept for
# the next run; on a new machine everything is made from scratch (~1 min debootstrap, ~3 min apt).
# Usage: scripts/test_sid.sh [ctest args]     (root; called by scripts/test.sh)
#        scripts/test_sid.sh --prepare         only make the root and install its packages (test.sh
#                                              runs this in the background while it builds)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${TREG_SID_ROOT:-/var/cache/treg/sid}
[ "$(id -u)" = 0 ] || {
  echo "scripts/test_sid.sh must run as root (debootstrap, chroot)" >&2
  exit 1
}
# shellcheck source=make_root.sh
source "$SRC/scripts/make_root.sh"
PREPARE=0
[ "${1:-}" = --prepare ] && PREPARE=1 && shift
make_root sid "$ROOT"
cleanup() {
  mountpoint -q "$ROOT/treg-src" && umount -l "$ROOT/treg-src"
  root_umounts "$ROOT"
}
trap cleanup EXIT
root_mounts "$ROOT"

read -r -a PACKAGES <<< "$(sed 's/#.*//' "$SRC/scripts/packages-sid.txt" | tr '\n' ' ')"
status=$(in_root "$ROOT" dpkg-query -W -f='${Status}\n' "${PACKAGES[@]}" 2> /dev/null || echo missing)
if echo "$status" | grep -qv '^install ok installed$'; then
  echo "[sid] installing packages"
  in_root "$ROOT" apt-get update -q > /dev/null
  in_root "$ROOT" apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" > "$ROOT.apt.log" 2>&1 || {
    tail -30 "$ROOT.apt.log"
    exit 1
  }
fi
echo "[sid] $(in_root "$ROOT" dpkg-query -W -f='libtorch-dev ${Version}' libtorch-dev)," \
  "$(in_root "$ROOT" python3 -c 'import transformers, tokenizers; print("transformers", transformers.__version__, "tokenizers", tokenizers.__version__)')"
[ "$PREPARE" = 1 ] && exit 0

mkdir -p "$ROOT/treg-src"
mount --bind "$SRC" "$ROOT/treg-src"
TREG_ROOT_ENV="CCACHE_DIR=/var/cache/treg-ccache CCACHE_BASEDIR=/treg-src CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime" \
  in_root "$ROOT" bash -c '
  set -euo pipefail
  cmake -S /treg-src -B /var/cache/treg-build -DCMAKE_BUILD_TYPE=Release -DTREG_BUILD_BENCH=OFF -DTREG_HF_TESTS=ON > /var/cache/treg-build.configure.log 2>&1 || {
    cat /var/cache/treg-build.configure.log; exit 1; }
  grep -E "sentencepiece:|Torch" /var/cache/treg-build.configure.log || true
  cmake --build /var/cache/treg-build -j"$(nproc)" > /var/cache/treg-build.log 2>&1 || {
    grep -E -B2 -A12 "error|Error" /var/cache/treg-build.log | head -80; echo "[sid] build failed"; exit 1; }
  echo "[sid] built: $(grep -c "warning:" /var/cache/treg-build.log) compiler warnings"
  cd /var/cache/treg-build
  # Unit tests, one smoke test and every real-HF comparison (the other smoke tests and the chaos
  # test run on Debian 12).
  ctest --output-on-failure -j"$(nproc)" -E "^(smoke_(gemma2|qwen2|qwen3|gemma3|phi3)|chaos_short)$" "$@"
' treg-sid "$@"
