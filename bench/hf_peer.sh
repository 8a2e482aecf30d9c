#!/usr/bin/env bash
# Runs bench/bench_train_step_hf.py (HF transformers + torch 2.x) inside the Debian sid root that
# scripts/test_sid.sh makes (TREG_SID_ROOT, default /var/cache/treg/sid; made here when missing).
# Usage (root): bench/hf_peer.sh MODEL THREADS LENGTHS.json
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${TREG_SID_ROOT:-/var/cache/treg/sid}
# shellcheck source=../scripts/make_root.sh
source "$SRC/scripts/make_root.sh"
make_root sid "$ROOT" > /dev/null
root_mounts "$ROOT"
trap 'root_umounts "$ROOT"' EXIT
if ! in_root "$ROOT" python3 -c "import transformers" 2> /dev/null; then
  in_root "$ROOT" apt-get update -q > /dev/null
  in_root "$ROOT" apt-get install -y -q --no-install-recommends python3-torch python3-transformers > /dev/null
fi
work=$(mktemp -d "$ROOT/tmp/hf-peer.XXXXXX")
cp "$SRC/bench/bench_train_step_hf.py" "$SRC/bench/peer_step.py" "$3" "$work/"
in_root "$ROOT" python3 "/tmp/$(basename "$work")/bench_train_step_hf.py" --model "$1" \
  --lengths "/tmp/$(basename "$work")/$(basename "$3")" --threads "$2"
rm -rf "$work"
