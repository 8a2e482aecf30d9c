#!/usr/bin/env bash
# End-to-end smoke test of the CLI for one architecture: make-tiny -> logprobs.
# Usage: smoke.sh TREG_BINARY ARCH WORK_DIR
set -euo pipefail
TREG=$1; ARCH=$2; WORK=$3
rm -rf "$WORK"; mkdir -p "$WORK"
"$TREG" make-tiny --arch "$ARCH" --out "$WORK/model" --seed 1
printf '%s\n' '{"ids":[1,2,3,4,5]}' '{"ids":[7,8]}' > "$WORK/in.jsonl"
"$TREG" logprobs --model "$WORK/model" --input "$WORK/in.jsonl" --out "$WORK/out.jsonl" --batch-size 2
test "$(wc -l < "$WORK/out.jsonl")" = 2
# n ids -> n-1 finite, negative log-probs
grep -Eq '"logprobs":\[-[0-9.e-]+,-[0-9.e-]+,-[0-9.e-]+,-[0-9.e-]+\]' "$WORK/out.jsonl"
grep -Eq '"ids":\[7,8\],"logprobs":\[-[0-9.e-]+\]' "$WORK/out.jsonl"
echo "smoke $ARCH ok"
