# Sourced by network-bench.sh and startup-bench.sh: slipway and podman side by side in namespaces
# the bench makes, touching none of the machine's network or container state.

# median X...: the median of the numbers, to four decimals.
median() {
  printf '%s\n' "$@" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.4f", v[(NR + 1) / 2]; else printf "%.4f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# timed VAR CMD...: runs CMD with its output to $work/out (a failure calls the caller's die with
# that output) and appends its wall seconds to the array VAR, as slipway_bench_time measures them
# (bench/bench_time.cpp: posix_spawn, not a fork of bash, whose copy-on-write faults were 2-3 ms
# a sample on this VM). Each sample starts settled (see settle).
timed() {
  settle
  timed_now "$@"
}
# timed_now VAR CMD...: timed without settling first (the second command of a pair).
timed_now() {
  local -n samples=$1
  shift
  local rc=0
  "$BENCH_TIME" "$work/seconds" "$@" >"$work/out" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    cat "$work/out" >&2
    die "failed ($rc): $*"
  fi
  samples+=("$(awk '{ printf "%.4f", $1 }' "$work/seconds")")
}

# settle, untimed, before every sample: waits (up to 10 s) until no process of this bench's
# podman is left, then writes dirty pages back. After `podman run --rm` or `rm -f` returns, conmon
# and the `podman container cleanup` it starts still tear down the container's network namespace
# and veth (holding the rtnl lock) and its mounts; without the wait that work landed in slipway's
# next sample (run --rm: 41 ms right after podman's turn, 34 ms after a pause, 20 ms alone).
settle() {
  local i
  for ((i = 0; i < 1000; i++)); do
    pgrep -f -- "$work/podman" > /dev/null || break
    sleep 0.01
  done
  sync
}

# podman_config WORK: podman's containers.conf (no ulimits: no CAP_SYS_RESOURCE here; runc:
# crun refuses the hybrid cgroups; cgroupfs) and storage.conf, in WORK; and WORK/tmp.
podman_config() {
  mkdir -p "$1/tmp"
  cat > "$1/containers.conf" << EOF2
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF2
  cat > "$1/storage.conf" << EOF2
[storage]
driver = "overlay"
graphroot = "$1/podman"
runroot = "$1/podman-run"
EOF2
}

# podman_enter WORK, inside the bench's network namespace and a private mount namespace: temp
# dirs over podman's CNI and state dirs, loopback up, podman's config in the environment, and
# the arrays `slipway` and `podman` (each with its store in WORK).
podman_enter() {
  local work=$1 dir
  mount --make-rprivate /
  for dir in /var/lib/cni /run/cni /etc/cni /run/containers; do
    mkdir -p "$work/shadow$dir"
    [ -d "$dir" ] || continue
    mount --bind "$work/shadow$dir" "$dir"
  done
  ip link set lo up
  export CONTAINERS_CONF=$work/containers.conf CONTAINERS_STORAGE_CONF=$work/storage.conf
  export TMPDIR=$work/tmp
  slipway=("$SLIPWAY" --root "$work/slipway")
  podman=(podman --root "$work/podman" --runroot "$work/podman-run" --storage-driver overlay
    --runtime runc --cgroup-manager cgroupfs --events-backend none)
}

# podman_bench_start NAME HEADER, in the bench script (which defines die, repo and self): checks
# root, slipway and podman; makes a temp dir with podman's config and a busybox rootfs tar
# (busybox.tar) and a network namespace, both removed at exit; prints HEADER; and runs the script
# again as `SCRIPT --inside WORK` inside that network namespace and a private mount namespace.
podman_bench_start() {
  local name=$1 header=$2
  [ "$(id -u)" = 0 ] || die "run as root"
  [ -x "$SLIPWAY" ] || die "no slipway binary at $SLIPWAY (scripts/build.sh slipway)"
  [ -x "$BENCH_TIME" ] || die "no timer at $BENCH_TIME (scripts/build.sh slipway_bench_time)"
  command -v podman > /dev/null || die "podman is not installed (scripts/install-deps.sh --with-peers)"
  work=$(mktemp -d "/var/tmp/$name.XXXXXX")
  netns=$name-$$
  # podman's overlay mounts go with the private mount namespace; the files remain until here.
  trap 'ip netns del "$netns" 2> /dev/null || true; rm -rf "$work"' EXIT
  podman_config "$work"
  "$repo/testdata/make-busybox-rootfs.sh" "$work/busybox.tar"
  ip netns add "$netns"
  echo "$header (network namespace $netns)"
  nsenter --net="/run/netns/$netns" unshare -m --propagation private -- "$self" --inside "$work"
}
