#!/usr/bin/env bash
# The token credit-assignment benchmark on its default size (README: "Token credit assignment
# benchmark"): installs, builds treg, makes the tiny llama and runs `treg credit-bench`. Extra
# arguments go to credit-bench (e.g. --seeds 1,2,3,4,5 --train-pairs 4000). Results:
# out/credit-bench/{report.html,results.json}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh --target treg
TREG=${TREG_BUILD_DIR:-build}/treg
[ -f out/tiny-model/config.json ] || "$TREG" make-tiny --arch llama --seed 0 --out out/tiny-model
"$TREG" credit-bench --model out/tiny-model --out out/credit-bench "$@"
