#!/usr/bin/env bash
# Emulated aarch64 (Debian arm64 + qemu user mode) environment for edgetts, on an x86 Debian host.
#
#   ci/arm64.sh [--cpu cortex-a76|cortex-a72|...] [--] COMMAND [ARGS...]
#
# Builds, once, a Debian arm64 root (debootstrap, Debian's own python3 + libgomp1 + libsndfile1 +
# libportaudio2 + espeak-ng, the cloning tests' real recording) with a venv holding the project's
# dependencies as aarch64 wheels from PyPI (pip running under emulation), cached in
# $EDGETTS_ARM64_CACHE (default /var/cache/edgetts-arm64, reused when present; the root rebuilt
# when its package list changes, the wheels when pyproject's dependency list changes). Then runs
# COMMAND inside it, in the checkout (bind-mounted at /src, cwd /src, PYTHONPATH=/src), with the
# venv's python first on PATH, QEMU_CPU=<cpu> (the CPU qemu emulates: its HWCAP / feature
# registers) and NUMBA_CPU_NAME=<cpu> (the CPU numba compiles for): cortex-a76 is the Raspberry
# Pi 5 (ARMv8.2 + dotprod), cortex-a72 the Raspberry Pi 4 (ARMv8.0 NEON).
#
# Needs root (debootstrap, chroot, mount namespaces). Host packages, installed if missing:
# qemu-user-static, debootstrap, binfmt-support. Where binfmt_misc cannot be used, the root is
# entered with proot -q qemu-aarch64-static instead of chroot.
#
# EDGETTS_ARM64_SHARE=DIR: a host directory to exchange files with, mounted at /share.
#
# EDGETTS_ARM64_SKIP_EXTRAS: the project's extras the test extra names that are left out (default
# "ray": a large wheel, and the Ray tests are not part of the emulated run).
#
# Example:  nice -n 10 ci/arm64.sh --cpu cortex-a72 python -m pytest -q tests/test_matmul.py
set -euo pipefail

CPU=cortex-a76
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) CPU="$2"; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--cpu CPU] COMMAND..." >&2; exit 2; }

SRC="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${EDGETTS_ARM64_CACHE:-/var/cache/edgetts-arm64}"
ROOT="$CACHE/root"
SUITE="${EDGETTS_ARM64_SUITE:-bookworm}"
MIRROR="${EDGETTS_ARM64_MIRROR:-http://deb.debian.org/debian}"
PKGS=python3,python3-venv,libgomp1,libsndfile1,libportaudio2,espeak-ng,ca-certificates
VENV=/opt/edgetts-venv
SHARE="${EDGETTS_ARM64_SHARE:-}"
export SHARE
log() { echo "arm64: $*" >&2; }

need_host_pkgs() {
  local missing=()
  command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v update-binfmts >/dev/null || missing+=(binfmt-support)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing host packages: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

binfmt_ok() {
  # aarch64 ELF handled by qemu through binfmt_misc (registered by qemu-user-static)
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || {
    mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  }
  grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null
}

# numba's cache checks a compiled function against its own source file only, and the fused
# decoder inlines kernels from other modules (attention.py, activations_lm.py): a cache kept
# from an earlier checkout handed back a decoder with the old attention (CI failed on a bit
# that a fresh compile gets right). One cache per content of edgetts/, the others removed.
numba_cache() {
  local key
  key="$(cd "$SRC" && find edgetts -name '*.py' -print0 | sort -z | xargs -0 cat | sha1sum | cut -c1-12)"
  find "$ROOT/var/cache" -maxdepth 1 -name "numba-$CPU*" ! -name "numba-$CPU-$key" -exec rm -rf {} + 2>/dev/null || true
  echo "/var/cache/numba-$CPU-$key"
}

# run ARGS inside the root: chroot in a private mount namespace (mounts vanish with it), or proot
in_root() {
  local envs=(env -i PATH="$VENV/bin:/usr/local/bin:/usr/bin:/bin" HOME=/root LANG=C.UTF-8
              EDGETTS_EMULATED=qemu-user QEMU_CPU="$CPU" NUMBA_CPU_NAME="$CPU" NUMBA_CACHE_DIR="$(numba_cache)"
              PYTHONPYCACHEPREFIX="/var/cache/pycache" PYTHONPATH=/src
              ${EDGETTS_KERNEL_ISA:+EDGETTS_KERNEL_ISA=$EDGETTS_KERNEL_ISA}
              ${NUMBA_NUM_THREADS:+NUMBA_NUM_THREADS=$NUMBA_NUM_THREADS})
  if [ "$MODE" = chroot ]; then
    unshare --mount --propagation private /bin/sh -ec '
      r="$1"; s="$2"; shift 2
      mount -t proc proc "$r/proc"; mount --rbind /sys "$r/sys"; mount --rbind /dev "$r/dev"
      mkdir -p "$r/src" "$r/tmp" "$r/share"; mount --bind "$s" "$r/src"; mount -t tmpfs tmpfs "$r/tmp"
      [ -z "$SHARE" ] || mount --bind "$SHARE" "$r/share"
      exec chroot "$r" /bin/sh -c "cd /src && exec \"\$@\"" sh "$@"' sh "$ROOT" "$SRC" "${envs[@]}" "$@"
  else
    mkdir -p "$ROOT/src"
    proot -q "qemu-aarch64-static -cpu $CPU" -r "$ROOT" -b /proc -b /dev -b /sys -b "$SRC:/src" -w /src \
      ${SHARE:+-b "$SHARE:/share"} \
      "${envs[@]}" "$@"
  fi
}

need_host_pkgs
if binfmt_ok; then MODE=chroot; else
  MODE=proot
  command -v proot >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq proot >/dev/null; }
  log "binfmt_misc unavailable: entering the root with proot + qemu-aarch64-static"
fi

# the root is rebuilt when the suite or the package list changes (the marker holds both)
if [ "$(cat "$ROOT/.edgetts-root-ready" 2>/dev/null)" != "$SUITE $PKGS" ]; then
  t0=$(date +%s)
  log "building the Debian $SUITE arm64 root in $ROOT (once)"
  rm -rf "$ROOT"; mkdir -p "$ROOT"
  if [ "$MODE" = chroot ]; then
    debootstrap --arch=arm64 --variant=minbase --include="$PKGS" "$SUITE" "$ROOT" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
      || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
  else
    debootstrap --foreign --arch=arm64 --variant=minbase --include="$PKGS" "$SUITE" "$ROOT" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1
    proot -q qemu-aarch64-static -0 -r "$ROOT" -b /proc -b /dev -b /sys /debootstrap/debootstrap --second-stage \
      >>"$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
  fi
  rm -rf "$ROOT"/var/cache/apt/archives/*.deb
  echo "$SUITE $PKGS" > "$ROOT/.edgetts-root-ready"
  log "root built in $(( $(date +%s) - t0 )) s"
fi

# the project's runtime + test dependencies, as aarch64 wheels (rebuilt when pyproject's lists change)
python3 - "$SRC/pyproject.toml" >"$CACHE/requirements.txt" <<'EOF'
import os, re, sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["project"]
opt = p.get("optional-dependencies", {})
skip = os.environ.get("EDGETTS_ARM64_SKIP_EXTRAS", "ray").split(",")  # Ray: large, not emulated

def expand(reqs):  # the project's own extras ("edgetts[server]") by their lists, never the project
    for r in reqs:
        m = re.fullmatch(re.escape(p["name"]) + r"\[(.+)\]", r.strip())
        if m:
            for e in m.group(1).split(","):
                if e.strip() not in skip:
                    yield from expand(opt[e.strip()])
        else:
            yield r

print("\n".join(dict.fromkeys(expand(p["dependencies"] + opt.get("test", [])))))
EOF
if ! cmp -s "$CACHE/requirements.txt" "$ROOT/var/cache/edgetts-requirements.txt"; then
  t0=$(date +%s)
  log "installing the aarch64 wheels into $VENV"
  cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
  # the host's CA bundle (it may trust a local proxy or mirror), and its index, for pip
  cp -L "${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}" "$ROOT/etc/ssl/certs/host-ca.crt"
  cp "$CACHE/requirements.txt" "$ROOT/var/cache/edgetts-requirements.new"
  in_root /bin/sh -ec "[ -x $VENV/bin/python ] || python3 -m venv $VENV
    PIP_CERT=/etc/ssl/certs/host-ca.crt ${PIP_INDEX_URL:+PIP_INDEX_URL=$PIP_INDEX_URL} \
    $VENV/bin/python -m pip install -q --disable-pip-version-check --prefer-binary \
      -r /var/cache/edgetts-requirements.new" || { log "pip install failed"; exit 1; }
  mv "$ROOT/var/cache/edgetts-requirements.new" "$ROOT/var/cache/edgetts-requirements.txt"
  log "wheels installed in $(( $(date +%s) - t0 )) s"
fi

in_root "$@"
