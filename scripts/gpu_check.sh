#!/usr/bin/env bash
# The GPU checks of the issues, in one run on a CUDA machine whose python3 has torch (a pip CUDA
# wheel: its LibTorch and CMake files), transformers and peft; nothing is downloaded.
#   1. Builds treg and bench_train_step against that CUDA LibTorch (NCCL from its nvidia-nccl).
#   2. `treg logprobs` on CUDA against transformers on CUDA (fp32; llama, gemma2, qwen3, gemma3).
#   3. DPO-REG on the tiny model on CUDA: plain, then as a 1-process torchrun rank with
#      ddp_backend nccl (the NCCL all-reduce path): the same losses.
#   4. LoRA on CUDA (fp32 and bf16): peft loads the adapters (scripts/check_peft.py).
#   5. bench_train_step on a Llama-3.2-1B shape in bf16: treg padded / packed / HF + TRL's math.
#   6. A random-weight Llama-3-8B (scripts/make_random_llama.py) trained with LoRA in bf16 for a
#      few steps: the peak CUDA memory of `treg train` (the issue's "8B on one 80 GB GPU").
# Results: OUT/summary.txt (+ one log per step). Each step has a time limit; the run stops starting
# new steps after TREG_GPU_DEADLINE seconds (default 540). TREG_GPU_CHECKS picks checks 2-6 by name
# (comma-separated: logprobs, nccl, lora, speed, lora8b; default all), so a short lease can spend
# itself on what is still unmeasured.
# Usage: scripts/gpu_check.sh OUT_DIR [DEPS_DIR]
#   DEPS_DIR (optional): Debian .deb files of the build dependencies (debs/*.deb, unpacked into
#   /opt/gpudeps) and the static sentencepiece + minja of scripts/setup.sh (treg-deps/), for a
#   machine without a package registry.
set -uo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
DEPS=${2:-}
DEADLINE=${TREG_GPU_DEADLINE:-540}
BUILD=$SRC/build-cuda
W=/tmp/treg-gpu
rm -rf "$W" && mkdir -p "$W"
SUMMARY=$OUT/summary.txt
say() { echo "[+${SECONDS}s] $*" | tee -a "$SUMMARY"; }
# step NAME LIMIT_S COMMAND...: runs it with its output in OUT/NAME.log; says ok/FAILED and the tail.
step() {
  local name=$1 limit=$2
  shift 2
  if ((SECONDS + 20 > DEADLINE)); then
    say "$name: SKIPPED (deadline ${DEADLINE}s)"
    return 1
  fi
  local t0=$SECONDS left=$((DEADLINE + 40 - SECONDS))
  ((limit > left)) && limit=$left
  # bash -c: a step may be a function of this script (exported below).
  timeout --kill-after=10 "$limit" bash -c '"$@"' step "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  if ((rc == 0)); then say "$name: ok in $((SECONDS - t0))s"; else
    say "$name: FAILED (exit $rc) in $((SECONDS - t0))s; its last lines:"
    tail -n 25 "$OUT/$name.log" | sed 's/^/    /' | tee -a "$SUMMARY"
  fi
  return $rc
}

say "gpu_check on $(hostname): $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1)"
say "$(python3 -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)' 2>&1)"
say "$(g++ --version | head -1); $(cmake --version | head -1); nproc $(nproc); $(. /etc/os-release && echo "$PRETTY_NAME")"

# ---- 1. dependencies and the build ----
export LD_LIBRARY_PATH=/opt/gpudeps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if [ -n "$DEPS" ]; then
  mkdir -p /opt/gpudeps
  for d in "$DEPS"/debs/*.deb; do dpkg -x "$d" /opt/gpudeps; done
  # Debian's .pc files say prefix=/usr: point them at the unpacked tree.
  sed -i 's|^prefix=/usr$|prefix=/opt/gpudeps/usr|' /opt/gpudeps/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc /opt/gpudeps/usr/share/pkgconfig/*.pc 2> /dev/null
  rm -rf /opt/treg-deps && cp -r "$DEPS/treg-deps" /opt/treg-deps
  export PKG_CONFIG_PATH=/opt/gpudeps/usr/lib/x86_64-linux-gnu/pkgconfig:/opt/gpudeps/usr/share/pkgconfig
  command -v pkg-config > /dev/null || export PKG_CONFIG=/opt/gpudeps/usr/bin/pkgconf
fi
TORCH_CMAKE=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
SITE=$(python3 -c 'import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))')
NCCL_H=$(find "$SITE/nvidia" -name nccl.h 2> /dev/null | head -1)
say "LibTorch CMake: $TORCH_CMAKE; nccl.h: ${NCCL_H:-none}"
export TORCH_CUDA_ARCH_LIST=9.0
configure() {
  local gen=()
  command -v ninja > /dev/null && gen=(-G Ninja)
  cmake -S "$SRC" -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DTREG_BUILD_TESTS=OFF \
    -DCMAKE_PREFIX_PATH="/opt/gpudeps/usr;$TORCH_CMAKE" -DTREG_DEPS_PREFIX=/opt/treg-deps \
    -DTREG_NCCL_INCLUDE_DIR="${NCCL_H%/nccl.h}" "$@"
}
build() { cmake --build "$BUILD" -j "$(nproc)" --target treg bench_train_step bench_adamw; }
want() { [[ ",${TREG_GPU_CHECKS:-all}," == *",all,"* || ",${TREG_GPU_CHECKS:-all}," == *",$1,"* ]]; }
export -f configure build
export SRC BUILD TORCH_CMAKE NCCL_H
step configure 240 configure || exit 1
grep -E "c10d|sentencepiece|minja|CUDA|cuDNN" "$OUT/configure.log" | head -12 | sed 's/^/    /' | tee -a "$SUMMARY"
if ! step build 420 build; then
  # A CUDA-only part that this LibTorch's headers reject must not cost the other checks.
  step configure_plain 120 configure -DTREG_CUDA_EXTRAS=OFF -DTREG_C10D=OFF && step build_plain 300 build || exit 1
fi
TREG=$BUILD/treg
say "$("$TREG" --version)"

# ---- 2. log-probs on CUDA vs transformers on CUDA ----
if want logprobs; then
hf_models=()
for arch in llama gemma2 qwen3 gemma3; do
  python3 "$SRC/tests/hf/make_hf_tiny.py" "$arch" "$W/hf-$arch" > /dev/null 2>&1 && hf_models+=("$W/hf-$arch")
done
step logprobs_vs_hf 180 python3 "$SRC/scripts/compare_hf.py" "${hf_models[@]}" --treg "$TREG" --device cuda --dtype float32 --tol 1e-4
grep -E "worst" "$OUT/logprobs_vs_hf.log" | sed 's/^/    /' | tee -a "$SUMMARY"
fi

# ---- 3. DPO-REG on CUDA: plain, then one torchrun rank with NCCL ----
"$TREG" make-tiny --arch llama --out "$W/tiny" --seed 3 > /dev/null 2>&1
if want nccl; then
common=(--config "$SRC/configs/tiny.yaml" model_name_or_path="$W/tiny" train_file="$SRC/configs/data/tiny_prefs.train.jsonl"
        eval_file= device=cuda max_steps=12 logging_steps=1 save_steps=0
        reward_dump="$W/tiny-dump.bin" report_pairs=0 eval_strategy=no)
step train_cuda 240 "$TREG" train "${common[@]}" output_dir="$W/plain"
grep -E "step 12/12|peak" "$OUT/train_cuda.log" | tail -2 | sed 's/^/    /' | tee -a "$SUMMARY"
step train_nccl 180 env WORLD_SIZE=1 RANK=0 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29531 \
  "$TREG" train "${common[@]}" output_dir="$W/nccl" ddp_backend=nccl
grep -E "over 1 rank|step 12/12" "$OUT/train_nccl.log" | tail -2 | sed 's/^/    /' | tee -a "$SUMMARY"
python3 - "$W/plain/metrics.jsonl" "$W/nccl/metrics.jsonl" << 'EOF' 2>&1 | tee -a "$SUMMARY"
import json, sys
def losses(p): return [json.loads(l)["loss"] for l in open(p) if '"loss"' in l]
a, b = losses(sys.argv[1]), losses(sys.argv[2])
d = max(abs(x - y) for x, y in zip(a, b)) if a and len(a) == len(b) else float("nan")
print("    plain vs NCCL rank: %d / %d steps, max |loss diff| %.3e, first %.6f last %.6f -> %s" % (
    len(a), len(b), d, a[0] if a else float("nan"), a[-1] if a else float("nan"), "OK" if d <= 1e-5 else "DIFFERENT"))
EOF
fi

# ---- 4. LoRA on CUDA; peft reads the adapters ----
if want lora; then
lora=(--config "$SRC/configs/tiny.yaml" model_name_or_path="$W/tiny" train_file="$SRC/configs/data/tiny_prefs.train.jsonl"
      eval_file= device=cuda max_steps=6 logging_steps=1
      report_pairs=0 eval_strategy=no use_peft=true lora_r=8 lora_alpha=16 lora_target_modules=all-linear
      learning_rate=1e-2 save_steps=0)
step lora_fp32 240 "$TREG" train "${lora[@]}" output_dir="$W/lora32" reward_dump="$W/lora-dump.bin" &&
  step peft_fp32 240 python3 "$SRC/scripts/check_peft.py" "$W/tiny" "$W/lora32/checkpoint-6" --treg "$TREG" --device cuda --tol 1e-4
grep -E "max\|diff\||PEFT check" "$OUT/peft_fp32.log" 2> /dev/null | sed 's/^/    /' | tee -a "$SUMMARY"
# (its own dump: the dump records the scoring precision, and bf16 scores in bf16 autocast)
step lora_bf16 240 "$TREG" train "${lora[@]}" output_dir="$W/lora16" reward_dump="$W/lora-dump16.bin" bf16=true
grep -E "step 6/6|projections in bf16" "$OUT/lora_bf16.log" | sed 's/^/    /' | tee -a "$SUMMARY"
fi

# ---- 5. speed: a 1B Llama in bf16, treg vs HF + TRL's math ----
if want speed; then
step bench_1b 300 "$BUILD/bench_train_step" --device cuda --bf16 --models 1b --pairs 8 --response 256 --steps 6 --hf
grep -E "^1b " "$OUT/bench_1b.log" | sed 's/^/    /' | tee -a "$SUMMARY"
step adamw_1b 90 "$BUILD/bench_adamw" --device cuda --shape 1b --steps 10
grep -E "AdamW|difference" "$OUT/adamw_1b.log" | sed 's/^/    /' | tee -a "$SUMMARY"
# Twice the tokens per step: how far the step's fixed costs (optimizer, launches) hold MFU down.
step bench_1b_16 240 "$BUILD/bench_train_step" --device cuda --bf16 --models 1b --pairs 16 --response 256 --steps 4
grep -E "^1b " "$OUT/bench_1b_16.log" | sed 's/^/    /' | tee -a "$SUMMARY"
fi

# ---- 6. a Llama-3-8B shape with LoRA on one GPU: peak memory ----
if want lora8b && step make_8b 150 python3 "$SRC/scripts/make_random_llama.py" "$W/llama8b" --shape llama3-8b; then
  gunzip -c "$SRC/tests/data/tokenizers/llama3/tokenizer.json.gz" > "$W/llama8b/tokenizer.json"
  cp "$SRC/tests/data/tokenizers/llama3/tokenizer_config.json" "$W/llama8b/"
  # UltraFeedback-sized pairs: a ~250-token prompt, ~700 / ~500-token answers.
  python3 - "$W/long.jsonl" << 'EOF'
import json, sys
s = "The committee reviewed the quarterly figures, compared them with last year's, and wrote a short note. "
with open(sys.argv[1], "w") as f:
    for i in range(8):
        f.write(json.dumps({"prompt": "Question %d: " % i + s * 12, "chosen": s * 35, "rejected": s * 25}) + "\n")
EOF
  step lora_8b 300 "$TREG" train --config "$SRC/configs/llama3.yaml" model_name_or_path="$W/llama8b" \
    train_file="$W/long.jsonl" eval_file= output_dir="$W/out8b" max_steps=3 logging_steps=1 save_strategy=no \
    per_device_train_batch_size=2 gradient_accumulation_steps=1 use_peft=true lora_r=16 lora_alpha=32 \
    lora_target_modules=all-linear learning_rate=1e-4 report_pairs=0 eval_strategy=no
  grep -E "LoRA r|step [0-9]/3|scored" "$OUT/lora_8b.log" | sed 's/^/    /' | tee -a "$SUMMARY"
  "$TREG" plan --config "$SRC/configs/llama3.yaml" model_name_or_path="$W/llama8b" use_peft=true \
    lora_target_modules=all-linear per_device_train_batch_size=2 --world-size 1 --gpu-memory 80 > "$OUT/plan_8b.log" 2>&1
  tail -n 4 "$OUT/plan_8b.log" | sed 's/^/    /' | tee -a "$SUMMARY"
fi
say "done"
