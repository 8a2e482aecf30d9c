#!/usr/bin/env bash
# `treg logprobs` against transformers' AutoModelForCausalLM (fp32, eager; scripts/compare_hf.py,
# tolerance 1e-4) for one architecture, on three checkpoints:
#   1. treg's make-tiny checkpoint;
#   2. a tiny random checkpoint written by transformers' own save_pretrained (make_hf_tiny.py);
#   3. a checkpoint saved by `treg train` (a few DPO-REG steps on the make-tiny model).
# Sequences cross the sliding window and llama3 rope scaling's original context where the config
# has them (compare_hf.py picks the lengths).
# ARCH rope-<type> (a Llama with that rope type; make_hf_tiny.py) runs step 2 only.
# Usage: hf_logprobs.sh TREG ARCH WORK_DIR
set -euo pipefail
TREG=$1 ARCH=$2 WORK=$3
SRC=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$WORK"
mkdir -p "$WORK"
# All checkpoints are compared by one python process (importing transformers takes seconds).
compare() { python3 "$SRC/scripts/compare_hf.py" "$@" --treg "$TREG" --device cpu --dtype float32 --tol 1e-4; }

python3 "$SRC/tests/hf/make_hf_tiny.py" "$ARCH" "$WORK/hf"
case "$ARCH" in rope-*) compare "$WORK/hf" && echo "hf logprobs $ARCH ok"; exit ;; esac

"$TREG" make-tiny --arch "$ARCH" --out "$WORK/tiny" --seed 3
head -n 8 "$SRC/configs/data/tiny_prefs.train.jsonl" > "$WORK/train.jsonl"
# The bundled pairs have system messages, which Gemma's real template refuses: the built-in
# `gemma` format folds them into the first user turn.
EXTRA=()
case "$ARCH" in gemma*) EXTRA=(chat_template=gemma) ;; esac
"$TREG" train --config "$SRC/configs/tiny.yaml" model_name_or_path="$WORK/tiny" train_file="$WORK/train.jsonl" \
  eval_file= output_dir="$WORK/run" max_steps=2 per_device_train_batch_size=2 gradient_accumulation_steps=1 \
  learning_rate=1e-2 logging_steps=1 save_steps=2 report_pairs=0 "${EXTRA[@]}" > "$WORK/train.log" 2>&1 || {
  tail -20 "$WORK/train.log"
  exit 1
}
compare "$WORK/hf" "$WORK/tiny" "$WORK/run/checkpoint-2"
echo "hf logprobs $ARCH ok"
