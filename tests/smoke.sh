#!/usr/bin/env bash
# End-to-end smoke test of the CLI for one architecture, the whole chain:
#   make-tiny -> score-tokens -> train a few steps -> reload the saved checkpoint with logprobs.
# Usage: smoke.sh TREG_BINARY ARCH WORK_DIR
set -euo pipefail
TREG=$1; ARCH=$2; WORK=$3
SRC=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$WORK"; mkdir -p "$WORK"
"$TREG" make-tiny --arch "$ARCH" --out "$WORK/model" --seed 1
printf '%s\n' '{"ids":[1,2,3,4,5]}' '{"ids":[7,8]}' > "$WORK/in.jsonl"
"$TREG" logprobs --model "$WORK/model" --input "$WORK/in.jsonl" --out "$WORK/out.jsonl" --batch-size 2
test "$(wc -l < "$WORK/out.jsonl")" = 2
# n ids -> n-1 finite, negative log-probs
grep -Eq '"logprobs":\[-[0-9.e-]+,-[0-9.e-]+,-[0-9.e-]+,-[0-9.e-]+\]' "$WORK/out.jsonl"
grep -Eq '"ids":\[7,8\],"logprobs":\[-[0-9.e-]+\]' "$WORK/out.jsonl"

# A slice of the bundled pairs keeps it quick.
head -n 16 "$SRC/configs/data/tiny_prefs.train.jsonl" > "$WORK/train.jsonl"
head -n 8 "$SRC/configs/data/tiny_prefs.eval.jsonl" > "$WORK/eval.jsonl"
ARGS=(model_name_or_path="$WORK/model" train_file="$WORK/train.jsonl" eval_file="$WORK/eval.jsonl"
      output_dir="$WORK/run" max_steps=3 per_device_train_batch_size=2 gradient_accumulation_steps=2
      logging_steps=1 eval_steps=2 save_steps=2 save_total_limit=1 report_pairs=2)
# The bundled pairs have system prompts, which Gemma-2's own chat template refuses (as transformers
# does); the built-in `gemma` format folds them into the first user turn.
case "$ARCH" in gemma*) ARGS+=(chat_template=gemma) ;; esac
"$TREG" score-tokens --config "$SRC/configs/tiny.yaml" "${ARGS[@]}"
# The dump exists: train reuses it (and would score it first if it did not).
"$TREG" train --config "$SRC/configs/tiny.yaml" "${ARGS[@]}" 2>&1 | tee "$WORK/train.log"
grep -q "reusing it" "$WORK/train.log"
test -f "$WORK/run/checkpoint-3/model.safetensors"
test -f "$WORK/run/checkpoint-3/tokenizer_config.json"
test ! -e "$WORK/run/checkpoint-2"            # save_total_limit 1
test -f "$WORK/run/report.html"
test -f "$WORK/run/config.yaml"
test "$(grep -c '"step"' "$WORK/run/metrics.jsonl")" -ge 4
grep -q '"eval_rewards/accuracies"' "$WORK/run/metrics.jsonl"
"$TREG" logprobs --model "$WORK/run/checkpoint-3" --input "$WORK/in.jsonl" --out "$WORK/out_trained.jsonl"
test "$(wc -l < "$WORK/out_trained.jsonl")" = 2
# Resuming a finished run is a no-op that still ends with a checkpoint at the last step.
"$TREG" train --config "$SRC/configs/tiny.yaml" "${ARGS[@]}" resume_from_checkpoint=auto
echo "smoke $ARCH ok"
