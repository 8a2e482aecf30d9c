#!/usr/bin/env bash
# Builds a minimal Debian root with debootstrap, for checks that must not see this machine's packages:
#   scripts/make_root.sh bookworm DIR   a clean Debian 12 (the fresh-machine check)
#   scripts/make_root.sh sid DIR        Debian sid (LibTorch 2.x, transformers: the real-HF checks)
# The host's apt settings (proxies, Check-Valid-Until) are copied in, so the root reaches the same
# registry the host does. Idempotent: a root that finished before (DIR/.treg-root-ok) is kept.
# Also sourced by the other scripts for in_root/root_mounts.
set -euo pipefail

# Mount what apt, compilers and Python need inside a chroot; safe to call twice.
root_mounts() {
  local dir=$1
  mountpoint -q "$dir/proc" || mount -t proc proc "$dir/proc"
  mountpoint -q "$dir/dev" || mount --rbind /dev "$dir/dev"
  mountpoint -q "$dir/sys" || mount --rbind /sys "$dir/sys"
  cp -L /etc/resolv.conf "$dir/etc/resolv.conf" 2>/dev/null || true
}

root_umounts() {
  local dir=$1 m
  for m in sys dev proc; do
    mountpoint -q "$dir/$m" && umount -R -l "$dir/$m" || true
  done
}

# Runs a command as root inside the chroot, with a clean environment.
in_root() {
  local dir=$1
  shift
  chroot "$dir" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive ${TREG_ROOT_ENV:-} "$@"
}

make_root() {
  local suite=$1 dir=$2
  if [ -f "$dir/.treg-root-ok" ]; then
    echo "[root] reusing $suite root at $dir"
    return 0
  fi
  command -v debootstrap > /dev/null || {
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
  }
  root_umounts "$dir"
  rm -rf "$dir"
  mkdir -p "$dir"
  echo "[root] debootstrap --variant=minbase $suite $dir"
  # The host's keyring knows the archive keys; sid's Release may be older than its Valid-Until.
  debootstrap --variant=minbase --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
    "$suite" "$dir" http://deb.debian.org/debian > "$dir.debootstrap.log" 2>&1 || {
    tail -20 "$dir.debootstrap.log" >&2
    echo "[root] debootstrap failed (log: $dir.debootstrap.log)" >&2
    return 1
  }
  # The host's apt settings: proxies, Check-Valid-Until and the like (not its sources: another suite).
  cp -a /etc/apt/apt.conf.d/. "$dir/etc/apt/apt.conf.d/" 2>/dev/null || true
  [ -f /etc/apt/apt.conf ] && cp /etc/apt/apt.conf "$dir/etc/apt/apt.conf"
  [ -d /etc/apt/auth.conf.d ] && cp -a /etc/apt/auth.conf.d/. "$dir/etc/apt/auth.conf.d/"
  rm -f "$dir/etc/apt/apt.conf.d/"*docker-clean* 2>/dev/null || true
  printf 'Acquire::Check-Valid-Until "false";\n' > "$dir/etc/apt/apt.conf.d/99treg-valid-until"
  rm -f "$dir/etc/apt/sources.list.d/"*
  echo "deb http://deb.debian.org/debian $suite main" > "$dir/etc/apt/sources.list"
  if [ "$suite" = bookworm ]; then
    echo "deb http://deb.debian.org/debian bookworm-updates main" >> "$dir/etc/apt/sources.list"
    echo "deb http://deb.debian.org/debian-security bookworm-security main" >> "$dir/etc/apt/sources.list"
  fi
  touch "$dir/.treg-root-ok"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  [ $# -eq 2 ] || {
    echo "usage: $0 bookworm|sid DIR" >&2
    exit 2
  }
  [ "$(id -u)" = 0 ] || {
    echo "$0 must run as root (debootstrap, chroot)" >&2
    exit 1
  }
  make_root "$1" "$2"
fi
