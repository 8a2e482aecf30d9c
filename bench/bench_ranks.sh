#!/usr/bin/env bash
# Scaling of `treg train` over ranks on one machine (c10d Gloo over loopback): 1, 2 and 4 ranks on
# a tiny random llama, each rank with per_device_train_batch_size pairs per micro-batch (so the
# global batch grows with the ranks) and the machine's cores split between the ranks. Prints
# tokens/s of the whole run (metrics.jsonl's tokens_per_second, already summed over ranks; the
# first two logged steps are warm-up and left out) against one rank on the same cores. The ranks
# share the machine's cores, so 100% means the split costs nothing; on separate devices the ideal
# would be N times one rank's.
# Usage: [ZERO=0|1|2] [BF16=false|true] bench/bench_ranks.sh [WORK_DIR] [STEPS=12] [RANKS="1 2 4"]
#   ZERO sets zero_stage (what it costs: the broadcasts after each update; with 2, the bucket
#   reduces during the backward instead of one all-reduce). BF16 sets bf16 (autocast; with
#   ZERO=2 over several ranks, the projections become bf16 replicas of sharded fp32 masters).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
TREG=${TREG:-$SRC/build/treg}
WORK=${1:-bench-ranks}
STEPS=${2:-12}
RANKS=${3:-1 2 4}
ZERO=${ZERO:-0}
BF16=${BF16:-false}
CORES=$(nproc)
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
[ -d "$WORK/model" ] || "$TREG" make-tiny --arch llama --out "$WORK/model" > /dev/null 2>&1
cp "$SRC/configs/data/tiny_prefs.train.jsonl" "$WORK/train.jsonl"
config() {  # $1 output dir
  cat << EOF
model_name_or_path: $WORK/model
train_file: $WORK/train.jsonl
reward_dump: $WORK/token_rewards.bf16-$BF16.bin
output_dir: $1
device: cpu
max_steps: $STEPS
per_device_train_batch_size: 4
gradient_accumulation_steps: 1
logging_steps: 1
eval_strategy: "no"
save_strategy: "no"
zero_stage: $ZERO
bf16: $BF16
EOF
}
echo "bench_ranks: treg train, tiny llama, $CORES cores split between the ranks, $STEPS steps, zero_stage $ZERO, bf16 $BF16"
printf "  %5s  %7s  %12s  %10s\n" ranks threads "tokens/s" "vs 1 rank"
base=""
port=$((29500 + $$ % 1000))
for n in $RANKS; do
  out="$WORK/run$n"
  rm -rf "$out"
  config "$out" > "$WORK/cfg$n.yaml"
  threads=$(((CORES + n - 1) / n))
  pids=()
  for ((r = 0; r < n; r++)); do
    WORLD_SIZE=$n RANK=$r LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      TREG_NUM_THREADS=$threads OMP_NUM_THREADS=$threads OMP_WAIT_POLICY=PASSIVE \
      "$TREG" train --config "$WORK/cfg$n.yaml" > "$WORK/run$n.rank$r.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || { tail -5 "$WORK/run$n".rank*.log; exit 1; }; done
  port=$((port + 1))
  tps=$(python3 - "$out/metrics.jsonl" << 'EOF'
import json, sys
v = [json.loads(l)["tokens_per_second"] for l in open(sys.argv[1]) if "tokens_per_second" in l]
v = v[2:] or v
print(f"{sum(v) / len(v):.0f}")
EOF
)
  [ -n "$base" ] || base=$tps
  printf "  %5d  %7d  %12s  %9.0f%%\n" "$n" "$threads" "$tps" "$(python3 -c "print(100 * $tps / $base)")"
done
