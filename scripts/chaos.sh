#!/usr/bin/env bash
# Chaos test: kill -9 `score-tokens` and then `train` at random moments, resume each time, and check
# that the final reward dump and the final weights are byte-identical to an uninterrupted run's.
# Usage: scripts/chaos.sh [KILLS_PER_STAGE (20)] [WORK_DIR (a new temp dir)] [SEED]
#   TREG_BIN: the treg executable (default build/treg). ctest runs a short variant (3 kills).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
TREG=${TREG_BIN:-$SRC/build/treg}
KILLS=${1:-20}
WORK=${2:-$(mktemp -d /tmp/treg-chaos.XXXXXX)}
RANDOM=${3:-$$}
# Bytes equal only at one thread count (CPU sums are split by thread); every run uses the same.
export TREG_NUM_THREADS=${TREG_NUM_THREADS:-2}
rm -rf "$WORK"
mkdir -p "$WORK"
"$TREG" make-tiny --arch llama --out "$WORK/model" --seed 5 > "$WORK/make_tiny.log" 2>&1 || {
  cat "$WORK/make_tiny.log" >&2
  exit 1
}
head -n 40 "$SRC/configs/data/tiny_prefs.train.jsonl" > "$WORK/train.jsonl"
args() {
  echo --config "$SRC/configs/tiny.yaml" model_name_or_path="$WORK/model" train_file="$WORK/train.jsonl" \
    eval_file= output_dir="$WORK/$1" score_batch_size=4 max_steps=12 per_device_train_batch_size=2 \
    gradient_accumulation_steps=2 logging_steps=1 eval_steps=0 save_steps=2 save_total_limit=2 \
    report_pairs=0
}

# The uninterrupted run, timed: kills land anywhere in [0, its duration).
start=$(date +%s.%N)
"$TREG" score-tokens --no-progress $(args ref) > "$WORK/ref.log" 2>&1
mid=$(date +%s.%N)
"$TREG" train $(args ref) >> "$WORK/ref.log" 2>&1
end=$(date +%s.%N)
score_s=$(awk "BEGIN{print $mid - $start}")
train_s=$(awk "BEGIN{print $end - $mid}")
echo "[chaos] uninterrupted: score-tokens ${score_s}s, train ${train_s}s; $KILLS kills per stage in $WORK"

# Runs "$@" in the background and kills it with SIGKILL after a random fraction of $1 seconds;
# returns 0 when it was killed, 1 when it finished first.
kill_randomly() {
  local span=$1
  shift
  local delay
  delay=$(awk "BEGIN{printf \"%.3f\", $span * $RANDOM / 32768}")
  "$@" >> "$WORK/chaos.log" 2>&1 &
  local pid=$!
  sleep "$delay"
  if kill -9 "$pid" 2> /dev/null; then
    wait "$pid" 2> /dev/null || true
    return 0
  fi
  wait "$pid" || {
    echo "[chaos] a run failed on its own:" >&2
    tail -20 "$WORK/chaos.log" >&2
    exit 1
  }
  return 1
}

for stage in score-tokens train; do
  span=$score_s
  extra=(--no-progress)
  if [ "$stage" = train ]; then
    span=$train_s
    extra=(resume_from_checkpoint=auto)
  fi
  killed=0 tries=0
  while [ "$killed" -lt "$KILLS" ] && [ "$tries" -lt $((KILLS * 5)) ]; do
    tries=$((tries + 1))
    if kill_randomly "$span" "$TREG" "$stage" $(args chaos) "${extra[@]}"; then
      killed=$((killed + 1))
    else
      # It finished before the kill: start that stage over so every kill hits unfinished work.
      [ "$stage" = score-tokens ] && rm -f "$WORK/chaos/token_rewards.bin"
      [ "$stage" = train ] && find "$WORK/chaos" -mindepth 1 -maxdepth 1 ! -name 'token_rewards.bin*' \
        ! -name '.treg.lock' ! -name 'bad_rows*' -exec rm -rf {} +
    fi
  done
  "$TREG" "$stage" $(args chaos) "${extra[@]}" >> "$WORK/chaos.log" 2>&1
  echo "[chaos] $stage: killed $killed times, then finished"
done

cmp "$WORK/ref/token_rewards.bin" "$WORK/chaos/token_rewards.bin"
last=$(basename "$(ls -d "$WORK"/ref/checkpoint-* | sort -t- -k2 -n | tail -1)")
cmp "$WORK/ref/$last/model.safetensors" "$WORK/chaos/$last/model.safetensors"
echo "[chaos] ok: dump and $last/model.safetensors identical to the uninterrupted run"
