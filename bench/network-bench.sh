#!/usr/bin/env bash
# network-bench.sh: container start on a bridge network, slipway against podman (Debian's 4.3,
# with runc and its CNI bridge), on the same busybox image:
#
#   run:  `run --rm IMAGE true`                       (bridge, veth, address, files; then gone)
#   d+rm: `run -d IMAGE sleep 1000` then `rm -f ID`   (the same, detached, and removed)
#
# Each is repeated RUNS times, the two taking turns so that other load hits both alike; the
# medians are printed with the ratio slipway/podman and the targets (run --rm <= 0.05, issue 14;
# run -d + rm <= 0.1).
# Every timed command's exit status is checked: a failing run is an error, never a number.
#
# Everything happens inside a network namespace this script makes (podman sets up its
# cni-podman0 bridge and iptables chains wherever it runs) and, for podman, inside a private
# mount namespace with temp dirs over /var/lib/cni, /run/cni and /etc/cni, so that neither
# touches the machine's interfaces or state. slipway's store, podman's root/run root and its
# containers.conf (CONTAINERS_CONF: no ulimits, runc, cgroupfs; see ../shared/DESIGN.md) live in
# one temp dir, removed at the end.
#
# Usage: bench/network-bench.sh   (as root)
# Environment: SLIPWAY (binary; default build/cli/slipway of this checkout), RUNS (5).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=podman-env.sh
source "$here/podman-env.sh"
self="$here/$(basename "${BASH_SOURCE[0]}")"
repo=$(cd "$here/.." && pwd)
SLIPWAY=${SLIPWAY:-$repo/build/cli/slipway}
BENCH_TIME=${BENCH_TIME:-$repo/build/bench/slipway_bench_time}
RUNS=${RUNS:-5}
TARGET=0.1
TARGET_RUN=0.05  # issue 14: run --rm at most 0.05 of podman

die() { printf 'network-bench: %s\n' "$*" >&2; exit 1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
# Runs "$@", failing the bench with its output when it fails.
checked() {
  local out
  if ! out=$("$@" 2>&1); then
    printf '%s\n' "$out" >&2
    die "failed: $*"
  fi
  printf '%s' "$out"
}

# run_d_rm VAR TOOL... -- IMAGE: `TOOL run -d IMAGE sleep 1000` then `TOOL rm -f ID`, each timed
# (timed, in podman-env.sh); appends the sum to the array VAR.
run_d_rm() {
  local -n total=$1
  shift
  local -a tool=() pair=()
  while [ "$1" != -- ]; do tool+=("$1"); shift; done
  timed pair "${tool[@]}" run -d "$2" sleep 1000
  timed_now pair "${tool[@]}" rm -f "$(tail -n 1 "$work/out")"
  total+=("$(awk -v a="${pair[0]}" -v b="${pair[1]}" 'BEGIN { printf "%.4f", a + b }')")
}

# ---- inside the namespaces: `network-bench.sh --inside WORK`
if [ "${1:-}" = --inside ]; then
  work=$2
  podman_enter "$work"

  checked "${slipway[@]}" import "$work/busybox.tar" busybox >/dev/null
  checked "${podman[@]}" import "$work/busybox.tar" localhost/busybox:latest >/dev/null
  # One untimed run each: the bridge, the rules and the default network made before the clock.
  checked "${slipway[@]}" run --rm busybox true >/dev/null
  checked "${podman[@]}" run --rm localhost/busybox true >/dev/null

  declare -a s_run p_run s_d p_d
  for ((i = 0; i < RUNS; i++)); do
    timed s_run "${slipway[@]}" run --rm busybox true
    timed p_run "${podman[@]}" run --rm localhost/busybox true
    run_d_rm s_d "${slipway[@]}" -- busybox
    run_d_rm p_d "${podman[@]}" -- localhost/busybox
  done
  # Both really used a bridge: an address on it, as each reports it.
  addr=$(checked "${slipway[@]}" run --rm busybox ip -4 -o addr show eth0)
  case $addr in *172.*) ;; *) die "slipway's container has no bridge address: $addr" ;; esac
  addr=$(checked "${podman[@]}" run --rm localhost/busybox ip -4 -o addr show eth0)
  case $addr in *inet*) ;; *) die "podman's container has no bridge address: $addr" ;; esac

  sr=$(median "${s_run[@]}"); pr=$(median "${p_run[@]}")
  sd=$(median "${s_d[@]}"); pd=$(median "${p_d[@]}")
  printf '%-30s %10s %10s %8s %8s\n' "median of $RUNS (s)" slipway podman ratio target
  printf '%-30s %10s %10s %8s %8s\n' "run --rm IMAGE true" "$sr" "$pr" "$(ratio "$sr" "$pr")" "<= $TARGET_RUN"
  printf '%-30s %10s %10s %8s %8s\n' "run -d + rm -f" "$sd" "$pd" "$(ratio "$sd" "$pd")" "<= $TARGET"
  "${podman[@]}" rm -af >/dev/null 2>&1 || true
  "${slipway[@]}" rm -f $("${slipway[@]}" ps -aq) >/dev/null 2>&1 || true
  exit 0
fi

podman_bench_start network-bench "network-bench: slipway and podman on their default bridges"
