#!/usr/bin/env bash
# End-to-end smoke test of the CLI for one architecture: make-tiny -> logprobs.
# Usage: smoke.sh TREG_BINARY ARCH WORK_DIR
set -euo pipefail
TREG=$1; ARCH=$2; WORK=$3
rm -rf "$WORK"; mkdir -p "$WORK"
"$TREG" make-tiny --arch "$ARCH" --out "$WORK/model" --seed 1
echo '{"ids":[1,2,3,4,5]}' > "$WORK/in.jsonl"
"$TREG" logprobs --model "$WORK/model" --input "$WORK/in.jsonl" --out "$WORK/out.jsonl"
test "$(wc -l < "$WORK/out.jsonl")" = 1
echo "smoke $ARCH ok"
