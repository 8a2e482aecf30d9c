#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang, ASan + UBSan) and runs each for SECONDS on a
# scratch copy of its committed corpus, as many at once as there are cores. A crash, leak, UBSan
# report, timeout (10 s per input) or broken invariant fails the run; the input that did it is kept
# in $BUILD/findings/<target>/ (turn it into a regression test, then add it to the corpus).
# Usage: scripts/fuzz.sh [SECONDS=60] [TARGET...]     (CI: ctest fuzz_short; long runs: 600 and more)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_EACH=${1:-60}
shift || true
BUILD=${TREG_FUZZ_BUILD:-$SRC/build-fuzz}
# NOHASHDIR: -g would otherwise put the checkout folder into every hash (CI clones elsewhere).
export CCACHE_BASEDIR=$SRC CCACHE_NOHASHDIR=1 CCACHE_SLOPPINESS=time_macros,include_file_mtime,include_file_ctime
# -O1: what libFuzzer recommends, and a quicker build than -O2 for the short CI run.
cmake -S "$SRC/tests/fuzz" -B "$BUILD" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS=-O1 > /dev/null
cmake --build "$BUILD" -j"$(nproc)" > "$BUILD/build.log" 2>&1 || {
  grep -E -A8 "error" "$BUILD/build.log" | head -60
  echo "[fuzz] build failed (log: $BUILD/build.log)"
  exit 1
}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$SRC"/tests/fuzz/*_fuzz.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi

run_one() {  # target -> 0 clean, 1 finding
  local t=$1 corpus=$BUILD/corpus/$1 findings=$BUILD/findings/$1
  rm -rf "$corpus" "$findings"
  mkdir -p "$corpus" "$findings"
  cp "$SRC/tests/fuzz/corpus/$t"/* "$corpus/"
  local start=$SECONDS
  if "$BUILD/$t" "$corpus" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
      -artifact_prefix="$findings/" -print_final_stats=1 > "$BUILD/$t.log" 2>&1; then
    echo "[fuzz] $t: clean for $((SECONDS - start)) s, $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$BUILD/$t.log" | grep -o '[0-9]*$') inputs"
  else
    echo "[fuzz] $t: FINDING after $((SECONDS - start)) s (log: $BUILD/$t.log, input: $(ls "$findings" | head -1))"
    grep -E "ERROR|runtime error|invariant broken|SUMMARY|terminate" "$BUILD/$t.log" | head -5
    return 1
  fi
}

failed=0
pids=()
for t in "${targets[@]}"; do
  run_one "$t" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$(nproc)" ]; then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
exit $failed
