#!/usr/bin/env bash
# startup-bench.sh: what every command pays before it does anything, slipway against podman
# (Debian's 4.3, runc, cgroupfs), on an empty store and on a store holding one image:
#
#   ps -a:    `ps -a` (no containers)
#   images:   `images` (one image, busybox)
#   version:  `version` (slipway) / `version` (podman): start-up and exit
#
# Each is repeated RUNS times, the two taking turns so that other load hits both alike; the
# medians are printed with the ratio slipway/podman and issue 14's target for `ps -a` (<= 0.15).
# Every timed command's exit status is checked: a failing run is an error, never a number. Then
# `perf stat` (when it works here) gives slipway's page faults and task-clock for `ps -a`, and
# LD_DEBUG=statistics the dynamic loader's share, the figures bench/README.md records.
#
# Everything runs inside a network namespace this script makes and, for podman, a private mount
# namespace with temp dirs over /var/lib/cni, /run/cni, /etc/cni and /run/containers (as in
# network-bench.sh), so that neither touches the machine's interfaces or state. slipway's store,
# podman's root/run root and its containers.conf (no ulimits, runc, cgroupfs) live in one temp
# dir, removed at the end.
#
# Usage: bench/startup-bench.sh   (as root)
# Environment: SLIPWAY (binary; default build/cli/slipway of this checkout), RUNS (21).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=podman-env.sh
source "$here/podman-env.sh"
self="$here/$(basename "${BASH_SOURCE[0]}")"
repo=$(cd "$here/.." && pwd)
SLIPWAY=${SLIPWAY:-$repo/build/cli/slipway}
BENCH_TIME=${BENCH_TIME:-$repo/build/bench/slipway_bench_time}
RUNS=${RUNS:-21}
TARGET_PS=0.15

die() { printf 'startup-bench: %s\n' "$*" >&2; exit 1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

# ---- inside the namespaces: `startup-bench.sh --inside WORK`
if [ "${1:-}" = --inside ]; then
  work=$2
  podman_enter "$work"

  timed setup "${slipway[@]}" import "$work/busybox.tar" busybox
  timed setup "${podman[@]}" import "$work/busybox.tar" localhost/busybox:latest
  # One untimed run of each command: page cache and first-use state before the clock.
  for cmd in "ps -a" images version; do
    timed setup "${slipway[@]}" $cmd
    timed setup "${podman[@]}" $cmd
  done

  declare -a s_ps p_ps s_img p_img s_ver p_ver
  for ((i = 0; i < RUNS; i++)); do
    timed s_ps "${slipway[@]}" ps -a
    timed p_ps "${podman[@]}" ps -a
    timed s_img "${slipway[@]}" images
    timed p_img "${podman[@]}" images
    timed s_ver "${slipway[@]}" version
    timed p_ver "${podman[@]}" version
  done
  # Both listed the image they were given: the store was really read.
  "${slipway[@]}" images | grep -q busybox || die "slipway images does not list busybox"
  "${podman[@]}" images | grep -q busybox || die "podman images does not list busybox"

  printf '%-22s %10s %10s %8s %8s\n' "median of $RUNS (s)" slipway podman ratio target
  line() { printf '%-22s %10s %10s %8s %8s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")" "$4"; }
  line "ps -a" "$(median "${s_ps[@]}")" "$(median "${p_ps[@]}")" "<= $TARGET_PS"
  line "images" "$(median "${s_img[@]}")" "$(median "${p_img[@]}")" "-"
  line "version" "$(median "${s_ver[@]}")" "$(median "${p_ver[@]}")" "-"

  # Where slipway's start goes: page faults and CPU of `ps -a` (median of 5), the loader's share.
  if perf stat -e page-faults true > /dev/null 2>&1; then
    for who in slipway podman; do
      declare -a faults=() clock=()
      for ((i = 0; i < 5; i++)); do
        if [ "$who" = slipway ]; then cmd=("${slipway[@]}"); else cmd=("${podman[@]}"); fi
        perf stat -x, -o "$work/perf.out" -e page-faults,task-clock "${cmd[@]}" ps -a > /dev/null ||
          die "perf stat $who ps -a failed"
        faults+=("$(awk -F, '$3 == "page-faults" { print $1 }' "$work/perf.out")")
        clock+=("$(awk -F, '$3 == "task-clock" { print $1 }' "$work/perf.out")")
      done
      printf '%s ps -a: %s page faults, %s ms task-clock (median of 5)\n' "$who" \
        "$(median "${faults[@]}" | cut -d. -f1)" "$(median "${clock[@]}" | awk '{ printf "%.1f", $1 }')"
    done
  fi
  LD_DEBUG=statistics "${slipway[@]}" ps -a 2>&1 >/dev/null |
    awk '/total startup time in dynamic loader/ { c = $(NF - 1) } /number of relocations:/ && !r { r = $NF }
         /number of relative relocations/ { rr = $NF }
         END { printf "slipway ps -a, dynamic loader: %s cycles, %s relocations, %s relative\n", c, r, rr }'
  printf 'slipway shared libraries: %s\n' "$(ldd "$SLIPWAY" | grep -c '=>')"
  exit 0
fi

podman_bench_start startup-bench "startup-bench: slipway $("$SLIPWAY" -v 2> /dev/null | head -1) against $(podman --version 2> /dev/null); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%M:%SZ)"
