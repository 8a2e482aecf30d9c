#!/usr/bin/env bash
# The main job on the built-in default: installs, builds, makes the tiny llama checkpoint, fine-tunes
# it on the bundled pairs and revision demonstrations (sft), scores the pairs with contrastive
# prompts (score-tokens) and trains DPO-REG on them (configs/tiny.yaml). Results: out/tiny/{metrics.jsonl,report.html,token_rewards.html,checkpoint-*}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh --target treg
TREG=${TREG_BUILD_DIR:-build}/treg
[ -f out/tiny-model/config.json ] || "$TREG" make-tiny --arch llama --seed 0 --out out/tiny-model
# The reference: the random model fine-tuned on the pairs' chosen answers and on revision
# demonstrations (configs/tiny_sft.yaml), copied to out/tiny-sft-model (configs/tiny.yaml's model).
if [ ! -f out/tiny-sft-model/model.safetensors ]; then
  "$TREG" make-sft-data --config configs/tiny.yaml --out out/tiny-sft-data/sft.jsonl
  "$TREG" sft --config configs/tiny_sft.yaml
  last=$(ls -d out/tiny-sft/checkpoint-* | sort -t- -k3 -n | tail -1)
  rm -rf out/tiny-sft-model.tmp && cp -r "$last" out/tiny-sft-model.tmp
  mv out/tiny-sft-model.tmp out/tiny-sft-model
fi
"$TREG" score-tokens --config configs/tiny.yaml "$@"
"$TREG" view-rewards --dump out/tiny/token_rewards.bin --out out/tiny/token_rewards.html --pairs 8
# The demo starts over on every run (a used output_dir is otherwise refused, as in HF).
"$TREG" train --config configs/tiny.yaml overwrite_output_dir=true "$@"
echo "Done. Open out/tiny/report.html (training curves, token rewards) and out/tiny/token_rewards.html."
