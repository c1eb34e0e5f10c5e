#!/usr/bin/env bash
# build-bench.sh: slipway against buildah, side by side, on one Dockerfile of ten trivial RUN steps
# (FROM busybox; RUN echo step N > /stepN, N = 1..10).
#
#   cold: the build with no usable cache    (slipway build --no-cache; buildah build --layers --no-cache)
#   (buildah's RUN steps on --network host, as slipway's; both inside a network namespace the
#   script makes)
#   warm: the same build again, fully cached (slipway build;            buildah build --layers)
#
# Each measurement is repeated (COLD_RUNS, WARM_RUNS), slipway and buildah taking turns so that
# other load on the machine hits both alike, and the median wall time is reported with the ratio
# slipway/buildah and issue 14's targets (cold <= 0.04, warm <= 0.05). See bench/README.md.
#
# Usage: bench/build-bench.sh   (as root)
# Environment: SLIPWAY (binary; default build/cli/slipway of this checkout), COLD_RUNS (3),
#              WARM_RUNS (5), KEEP_WORKDIR=1 (keep the temp dir for inspection; mounts still go).
#
# Everything lives in one temp dir: slipway's store, buildah's graph root and run root, their
# configs, the build context. Nothing touches /var/lib/containers or /var/lib/slipway. Each buildah
# invocation runs in a private mount namespace in which /etc and /var/lib are read-only and /run,
# /var/tmp and /var/cache are temp dirs, because buildah 1.28 otherwise writes outside its --root
# (/var/lib/containers/cache, /etc/containers/networks, /etc/cni, /var/cache/containers, /run/runc,
# /run/containers, /var/tmp). The namespace is set up before the clock starts.
set -euo pipefail
export LC_ALL=C  # awk and printf agree on the decimal point

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self="$here/$(basename "${BASH_SOURCE[0]}")"
repo=$(cd "$here/.." && pwd)
SLIPWAY=${SLIPWAY:-$repo/build/cli/slipway}
BENCH_TIME=${BENCH_TIME:-$repo/build/bench/slipway_bench_time}
COLD_RUNS=${COLD_RUNS:-3}
WARM_RUNS=${WARM_RUNS:-5}
TARGET_COLD=0.04  # issue 14
TARGET_WARM=0.05
STEPS=10

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf 'build-bench: %s\n' "$*" >&2; exit 1; }
# The timed commands run under slipway_bench_time (bench/bench_time.cpp): posix_spawn and a clock
# around it. Bracketing them in bash, the fork of bash and its copy-on-write faults were 2-3 ms
# of each sample on this VM (and with $(date) around it, 1-3 ms more), a fifth of a cached
# slipway build. settle, untimed, before each: the other builder's dirty pages are written back
# now, not during the next sample (a cached slipway build right after a buildah build took
# 33-37 ms against 17-22 ms alone).
settle() { sync; }
# seconds FILE: the seconds slipway_bench_time wrote, to three decimals.
seconds() { awk '{ printf "%.3f", $1 }' "$1"; }
# The median of the numbers given as arguments.
median() {
  printf '%s\n' "$@" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# Unmounts everything mounted at or below $1, deepest first, in the current mount namespace.
umount_below() {
  local m
  awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
}

# check_cache BUILDER cold|warm OUTPUT: cold means no step came from the cache, warm that every
# RUN step did. Both builders print "Using cache" for a hit (buildah "--> Using cache ID", slipway
# " ---> Using cache", as docker does).
check_cache() {
  local hits
  hits=$(grep -c 'Using cache' "$3" || true)
  if { [ "$2" = cold ] && [ "$hits" -ne 0 ]; } || { [ "$2" = warm ] && [ "$hits" -lt "$STEPS" ]; }; then
    cat "$3" >&2
    die "$1 $2 build: $hits of $STEPS steps came from the cache"
  fi
}

# ---------------------------------------------------------------------------------------------
# The buildah side: `build-bench.sh --buildah WORK ACTION`, run by buildah_do below inside
# `unshare -m`. ACTION: setup | cold | warm | check | cleanup. cold and warm print the seconds.
buildah_action() {
  local work=$1 action=$2 b=$1/buildah
  mount --make-rprivate /
  mount --bind "$b/shadow/run" /run
  mount --bind "$b/shadow/vartmp" /var/tmp
  mount --bind "$b/shadow/varcache" /var/cache
  mount --bind -o ro /etc /etc
  mount --bind -o ro /var/lib /var/lib
  export CONTAINERS_CONF=$b/containers.conf CONTAINERS_STORAGE_CONF=$b/storage.conf TMPDIR=$b/tmp
  local -a bh=(buildah --root "$b/root" --runroot "$b/runroot" --storage-driver overlay)
  # --network host: the network slipway's RUN steps use (issue 14 compares builds on it).
  local -a bflags=(--layers --pull=never --network host --runtime runc -t localhost/bench:latest)
  local t0 t1 out ctr
  case $action in
    setup)
      # The very base image slipway uses, from slipway's OCI image layout.
      skopeo copy -q "oci:$work/slipway/oci:busybox:latest" \
        "containers-storage:[overlay@$b/root+$b/runroot]localhost/busybox:latest" >&2
      ;;
    cold | warm)
      [ "$action" = cold ] && bflags=(--no-cache "${bflags[@]}")
      settle
      "$BENCH_TIME" "$b/seconds" "${bh[@]}" build "${bflags[@]}" "$work/ctx" > "$b/build.out" 2>&1 ||
        { cat "$b/build.out" >&2; die "buildah $action build failed"; }
      check_cache buildah "$action" "$b/build.out"
      seconds "$b/seconds"
      ;;
    check)
      ctr=$("${bh[@]}" from --pull=never -q localhost/bench:latest)
      out=$("${bh[@]}" run --network none --runtime runc "$ctr" cat /step$STEPS)
      "${bh[@]}" rm "$ctr" > /dev/null
      [ "$out" = "step $STEPS" ] || die "buildah image: /step$STEPS holds '$out'"
      ;;
    cleanup)
      "${bh[@]}" rm --all > /dev/null 2>&1 || true
      "${bh[@]}" rmi --all --force > /dev/null 2>&1 || true
      ;;
  esac
  # Whatever buildah left mounted (overlay layers, its graph root) goes now, not with the namespace.
  umount_below "$b/root"
  umount_below "$b/runroot"
}

if [ "${1:-}" = "--buildah" ]; then
  buildah_action "$2" "$3"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "run as root (buildah with overlay and runc, slipway's runtime)"
[ -x "$SLIPWAY" ] || die "no slipway binary at $SLIPWAY (cmake --build build --target slipway, or set SLIPWAY)"
[ -x "$BENCH_TIME" ] || die "no timer at $BENCH_TIME (cmake --build build --target slipway_bench_time)"
missing=()
command -v buildah > /dev/null || missing+=(buildah)
command -v skopeo > /dev/null || missing+=(skopeo)
command -v runc > /dev/null || missing+=(runc)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2
fi
command -v unshare > /dev/null || die "unshare (util-linux) is needed"

# Everything runs in a network namespace of the bench's own (RUN steps on the host network, of
# either builder, then touch nothing of the machine's): the script runs itself again inside it.
if [ -z "${BUILD_BENCH_NETNS:-}" ]; then
  netns=slwbuild-$$
  ip netns add "$netns"
  rc=0
  BUILD_BENCH_NETNS=$netns nsenter --net="/run/netns/$netns" "$self" "$@" || rc=$?
  ip netns del "$netns"
  exit "$rc"
fi
ip link set lo up

work=$(mktemp -d /tmp/slipway-bench.XXXXXX)
cleanup() {
  local rc=$?
  trap - EXIT
  if [ -d "$work/buildah/root" ]; then
    unshare -m --propagation private -- "$self" --buildah "$work" cleanup || true
  fi
  umount_below "$work"
  if [ "${KEEP_WORKDIR:-0}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
chmod 755 "$work"

# The build context: the same Dockerfile for both builders.
mkdir -p "$work/ctx"
{
  echo "FROM busybox"
  for ((n = 1; n <= STEPS; n++)); do echo "RUN echo step $n > /step$n"; done
} > "$work/ctx/Dockerfile"

# slipway: the busybox rootfs imported as busybox:latest.
"$repo/testdata/make-busybox-rootfs.sh" "$work/busybox-rootfs.tar"
sw=("$SLIPWAY" --root "$work/slipway")
"${sw[@]}" import "$work/busybox-rootfs.tar" busybox > /dev/null

# buildah: its storage, configs and the scratch dirs its namespace puts on /run, /var/tmp and
# /var/cache; the base image is copied from slipway's store.
b=$work/buildah
mkdir -p "$b/root" "$b/runroot" "$b/tmp" "$b/cni" "$b/shadow/run" "$b/shadow/vartmp" "$b/shadow/varcache"
chmod 1777 "$b/shadow/vartmp"
# No CAP_SYS_RESOURCE here, so no raising rlimits; hybrid cgroups, so runc, not crun.
cat > "$b/containers.conf" << EOF
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
image_copy_tmp_dir = "$b/tmp"

[network]
network_backend = "cni"
network_config_dir = "$b/cni"
EOF
cat > "$b/storage.conf" << EOF
[storage]
driver = "overlay"
graphroot = "$b/root"
runroot = "$b/runroot"
EOF
buildah_do() { unshare -m --propagation private -- "$self" --buildah "$work" "$1"; }
buildah_do setup

# The manifest digest slipway's OCI layout gives the name $1 (empty if none, or without jq).
slipway_manifest() {
  command -v jq > /dev/null || return 0
  jq -r --arg n "$1" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $n) | .digest' \
    "$work/slipway/oci/index.json"
}
slipway_build() { # cold|warm; prints the seconds
  local -a flags=(-t bench)
  [ "$1" = cold ] && flags=(--no-cache "${flags[@]}")
  settle
  "$BENCH_TIME" "$work/seconds" "${sw[@]}" build "${flags[@]}" "$work/ctx" > "$work/slipway.out" 2>&1 ||
    { cat "$work/slipway.out" >&2; die "slipway $1 build failed"; }
  check_cache slipway "$1" "$work/slipway.out"
  seconds "$work/seconds"
}

log "slipway: $SLIPWAY"
log "buildah: $(buildah --version)"
log "runs: cold x$COLD_RUNS, warm x$WARM_RUNS, taking turns; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"

sw_cold=() sw_warm=() bh_cold=() bh_warm=()
for ((i = 1; i <= COLD_RUNS; i++)); do
  sw_cold+=("$(slipway_build cold)")
  bh_cold+=("$(buildah_do cold)")
  log "cold #$i: slipway ${sw_cold[-1]} s  buildah ${bh_cold[-1]} s"
done

# One untimed cached build each, so the cache is populated whatever --no-cache did to it.
slipway_build warm > /dev/null
buildah_do warm > /dev/null
ref_id=$(slipway_manifest bench:latest)
[ -n "$ref_id" ] || log "warning: cannot tell whether slipway's warm builds are fully cached (no jq, or no bench:latest in index.json)"
for ((i = 1; i <= WARM_RUNS; i++)); do
  sw_warm+=("$(slipway_build warm)")
  # Fully cached: a warm build gives the very image the previous cached build gave.
  id=$(slipway_manifest bench:latest)
  [ "$id" = "$ref_id" ] || { cat "$work/slipway.out" >&2; die "slipway warm build was not fully cached (bench:latest went from $ref_id to $id)"; }
  bh_warm+=("$(buildah_do warm)")
  log "warm #$i: slipway ${sw_warm[-1]} s  buildah ${bh_warm[-1]} s"
done

# Both images hold what the Dockerfile wrote.
buildah_do check
if out=$("${sw[@]}" run --rm --network none bench cat /step$STEPS 2> "$work/slipway.err"); then
  [ "$out" = "step $STEPS" ] || die "slipway image: /step$STEPS holds '$out'"
else
  log "warning: could not check the slipway image (slipway run: $(tr '\n' ' ' < "$work/slipway.err"))"
fi

report() { # NAME TARGET SLIPWAY_SAMPLES_ARRAY BUILDAH_SAMPLES_ARRAY
  local name=$1 target=$2 s b ratio verdict
  local -n sa=$3 ba=$4
  s=$(median "${sa[@]}")
  b=$(median "${ba[@]}")
  ratio=$(awk -v s="$s" -v b="$b" 'BEGIN { printf "%.3f", s / b }')
  verdict=$(awk -v r="$ratio" -v t="$target" 'BEGIN { print (r <= t) ? "met" : "NOT met" }')
  printf '%s: slipway %s s  buildah %s s  ratio %s (target <= %s: %s)\n' "$name" "$s" "$b" "$ratio" "$target" "$verdict"
}
echo "build-bench: $STEPS RUN steps; median of $COLD_RUNS cold and $WARM_RUNS warm builds; $(nproc) cores; $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "samples cold: slipway ${sw_cold[*]}  buildah ${bh_cold[*]}"
echo "samples warm: slipway ${sw_warm[*]}  buildah ${bh_warm[*]}"
report cold "$TARGET_COLD" sw_cold bh_cold
report warm "$TARGET_WARM" sw_warm bh_warm
