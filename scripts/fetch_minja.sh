#!/usr/bin/env bash
# Unpacks Google's minja (header-only Jinja engine for chat templates, as llama.cpp uses) from
# Debian sid's libminja-dev into PREFIX (default /opt/treg-deps): headers land in
# PREFIX/usr/include/minja. Debian 12 has no minja package; the .deb is architecture-independent and
# needs only nlohmann-json3-dev, which Debian 12 has.
# Usage: scripts/fetch_minja.sh [PREFIX]     (root; idempotent: PREFIX/.minja, holding the package
#        version, marks a finished copy)
# sid is read through a private apt list: the machine's own apt sources stay untouched.
set -euo pipefail
PREFIX=${1:-${TREG_DEPS_PREFIX:-/opt/treg-deps}}
TESTED_VERSION=0~git20250922.021c2293c187  # what treg's tests ran with
STAMP="$PREFIX/.minja"

if [ -f "$STAMP" ] && [ -f "$PREFIX/usr/include/minja/minja.hpp" ]; then
  echo "[minja] libminja-dev $(cat "$STAMP") already in $PREFIX"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/parts" "$work/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main" > "$work/sid.list"
APT=(-o Dir::Etc::SourceList="$work/sid.list" -o Dir::Etc::SourceParts="$work/parts"
  -o Dir::State::Lists="$work/lists" -o Dir::Cache::Archives="$work/archives"
  -o Acquire::Check-Valid-Until=false -o APT::Sandbox::User=root)
apt-get "${APT[@]}" update -q > "$work/update.log" 2>&1 || {
  cat "$work/update.log" >&2
  exit 1
}
version=$(apt-cache "${APT[@]}" show libminja-dev 2>/dev/null | sed -n 's/^Version: //p' | sort -V | tail -1)
if [ -z "$version" ]; then
  echo "[minja] Debian sid has no libminja-dev package (apt-cache show found none)" >&2
  exit 1
fi
case "$version" in
  "$TESTED_VERSION"-*) ;;
  *) echo "[minja] note: sid has libminja-dev $version; treg was tested with $TESTED_VERSION-*" >&2 ;;
esac
echo "[minja] fetching libminja-dev $version from Debian sid into $PREFIX"
(cd "$work" && apt-get "${APT[@]}" download -q "libminja-dev=$version" > download.log 2>&1) || {
  cat "$work/download.log" >&2
  exit 1
}
mkdir -p "$PREFIX"
dpkg -x "$work"/libminja-dev_*.deb "$PREFIX"
test -f "$PREFIX/usr/include/minja/minja.hpp"
echo "$version" > "$STAMP"
echo "[minja] done: $PREFIX/usr/include/minja/minja.hpp"
