#!/usr/bin/env bash
# Proves the README's commands on a machine that has nothing: builds a clean Debian 12 root with
# debootstrap (scripts/make_root.sh), copies this working tree into it (tracked and untracked
# files, not ignored ones: no build tree, no out/) and runs, as root inside it,
#   bash scripts/run_tiny.sh       (README command 1)
#   bash scripts/test.sh           (README command 2; with --tests)
# Usage: scripts/check_fresh_machine.sh [--tests] [--keep] [DIR]   (root; DIR default /var/tmp/treg-fresh)
#   --keep  leave the root in place afterwards (it is always made anew at the start)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
TESTS=0 KEEP=0 DIR=/var/tmp/treg-fresh
for a in "$@"; do
  case "$a" in
    --tests) TESTS=1 ;;
    --keep) KEEP=1 ;;
    -*) echo "unknown option $a" >&2; exit 2 ;;
    *) DIR=$a ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "$0 must run as root (debootstrap, chroot)" >&2; exit 1; }
# shellcheck source=make_root.sh
source "$SRC/scripts/make_root.sh"
root_umounts "$DIR" 2> /dev/null || true
rm -rf "$DIR"
start=$(date +%s)
make_root bookworm "$DIR"
cleanup() {
  root_umounts "$DIR"
  [ "$KEEP" = 1 ] || rm -rf "$DIR"
}
trap cleanup EXIT
root_mounts "$DIR"
echo "[fresh] clean Debian 12 root in $(($(date +%s) - start)) s: $(in_root "$DIR" dpkg-query -W | wc -l) packages"

mkdir -p "$DIR/root/treg"
(cd "$SRC" && git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} sh -c '[ -e "{}" ] && echo "{}"' |
  tar -cf - -T -) | tar -xf - -C "$DIR/root/treg"

run_step() {
  local name=$1 t0
  shift
  t0=$(date +%s)
  echo "[fresh] $name"
  if in_root "$DIR" bash -c "cd /root/treg && $*" > "$DIR.$name.log" 2>&1; then
    echo "[fresh] $name passed in $(($(date +%s) - t0)) s (log: $DIR.$name.log)"
  else
    tail -40 "$DIR.$name.log"
    echo "[fresh] $name FAILED after $(($(date +%s) - t0)) s (log: $DIR.$name.log)"
    exit 1
  fi
}
run_step run_tiny "bash scripts/run_tiny.sh && test -f out/tiny/report.html && test -f out/tiny/token_rewards.html"
grep -E "eval_rewards/accuracies|Done" "$DIR.run_tiny.log" | tail -2 || true
[ "$TESTS" = 1 ] && run_step test "bash scripts/test.sh" && grep -E "tests passed|tests failed" "$DIR.test.log"
echo "[fresh] all passed in $(($(date +%s) - start)) s"
