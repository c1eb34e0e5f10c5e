#!/usr/bin/env bash
# registry-bench.sh: slipway's registry client against buildah and skopeo, side by side, with the
# same local docker-registry (distribution 2.8, plain http on 127.0.0.1) and two images:
#   busybox: the busybox-static rootfs (testdata/make-busybox-rootfs.sh), one small layer;
#   five:    FROM busybox plus 5 layers of 4 MiB of /dev/urandom each (slipway build).
#
#   pull: slipway pull into an empty store   vs  buildah pull into empty overlay storage
#         (both end with the image unpacked; checked by running it)
#   push: slipway push to an empty registry  vs  skopeo copy oci:<slipway's layout> docker://...
#   copy: slipway copy registry -> registry  vs  skopeo copy docker:// -> docker://
#
# Each measurement runs RUNS times (default 3), the tools taking turns; the median wall time and
# the ratio slipway/other are printed with the issue's targets (pull <= 0.33, push and copy
# <= 0.8). Push and copy go to a second registry whose storage is wiped before every run, so no
# blob is already there and nothing can be mounted.
#
# Usage: bench/registry-bench.sh   (as root: slipway build and buildah's overlay storage)
# Environment: SLIPWAY (binary; default build/cli/slipway of this checkout), RUNS (3),
#              KEEP_WORKDIR=1 (keep the temp dir).
#
# buildah is confined as in build-bench.sh: its own --root/--runroot, containers.conf and
# storage.conf in the temp dir, and each invocation in a private mount namespace where /etc and
# /var/lib are read-only and /run, /var/tmp, /var/cache are temp dirs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self="$here/$(basename "${BASH_SOURCE[0]}")"
repo=$(cd "$here/.." && pwd)
SLIPWAY=${SLIPWAY:-$repo/build/cli/slipway}
RUNS=${RUNS:-3}
TARGET_PULL=0.33
TARGET_PUSH=0.8
TARGET_COPY=0.8

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf 'registry-bench: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() {
  printf '%s\n' "$@" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
umount_below() {
  local m
  awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
}

# ---------------------------------------------------------------------------------------------
# The buildah side: `registry-bench.sh --buildah WORK ACTION IMAGE`, run inside `unshare -m`.
# ACTION: pull (prints the seconds) | check | cleanup.
buildah_action() {
  local work=$1 action=$2 image=${3:-} b=$1/buildah
  mount --make-rprivate /
  mount --bind "$b/shadow/run" /run
  mount --bind "$b/shadow/vartmp" /var/tmp
  mount --bind "$b/shadow/varcache" /var/cache
  mount --bind -o ro /etc /etc
  mount --bind -o ro /var/lib /var/lib
  export CONTAINERS_CONF=$b/containers.conf CONTAINERS_STORAGE_CONF=$b/storage.conf TMPDIR=$b/tmp
  local -a bh=(buildah --root "$b/root" --runroot "$b/runroot" --storage-driver overlay)
  local t0 t1 ctr out
  case $action in
    pull)
      t0=$(now)
      "${bh[@]}" pull -q --tls-verify=false "docker://$image" > /dev/null
      t1=$(now)
      elapsed "$t0" "$t1"
      ;;
    check)
      ctr=$("${bh[@]}" from --pull=never -q "$image")
      out=$("${bh[@]}" run --network none --runtime runc "$ctr" echo ok)
      "${bh[@]}" rm "$ctr" > /dev/null
      [ "$out" = ok ] || die "buildah: $image does not run"
      ;;
    cleanup)
      "${bh[@]}" rm --all > /dev/null 2>&1 || true
      "${bh[@]}" rmi --all --force > /dev/null 2>&1 || true
      ;;
  esac
  umount_below "$b/root"
  umount_below "$b/runroot"
}

if [ "${1:-}" = "--buildah" ]; then
  buildah_action "$2" "$3" "${4:-}"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "run as root (slipway build, buildah with overlay and runc)"
[ -x "$SLIPWAY" ] || die "no slipway binary at $SLIPWAY (cmake --build build --target slipway, or set SLIPWAY)"
for tool in buildah skopeo runc docker-registry curl unshare python3; do
  command -v "$tool" > /dev/null || die "$tool is needed (scripts/install-deps.sh --with-peers)"
done

work=$(mktemp -d /tmp/slipway-registry-bench.XXXXXX)
registry_pids=()
cleanup() {
  local rc=$? pid
  trap - EXIT
  for pid in "${registry_pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
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

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# start_registry NAME: a docker-registry on a free port with storage in $work/NAME; sets
# REGISTRY_PORT and REGISTRY_PID (also remembered for cleanup).
start_registry() {
  local dir=$work/$1
  mkdir -p "$dir"
  REGISTRY_PORT=$(free_port)
  cat > "$dir/config.yml" << EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
http:
  addr: 127.0.0.1:$REGISTRY_PORT
EOF
  docker-registry serve "$dir/config.yml" > "$dir/log" 2>&1 &
  REGISTRY_PID=$!
  registry_pids+=("$REGISTRY_PID")
  local i
  for ((i = 0; i < 100; i++)); do
    curl -fsS "http://127.0.0.1:$REGISTRY_PORT/v2/" > /dev/null 2>&1 && return 0
    sleep 0.05
  done
  die "docker-registry did not start (see $dir/log)"
}
stop_registry() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# The source registry, holding both images for the whole run.
start_registry source
src=127.0.0.1:$REGISTRY_PORT
# The target registry is started fresh (empty) for every push and copy run.
target_pid=
fresh_target() {
  [ -n "$target_pid" ] && stop_registry "$target_pid"
  rm -rf "$work/target"
  start_registry target
  target_pid=$REGISTRY_PID
  dst=127.0.0.1:$REGISTRY_PORT
}

# The images, made and pushed by slipway once.
sw_setup=("$SLIPWAY" --root "$work/setup-store")
"$repo/testdata/make-busybox-rootfs.sh" "$work/busybox-rootfs.tar"
"${sw_setup[@]}" import "$work/busybox-rootfs.tar" busybox > /dev/null
mkdir -p "$work/ctx"
{
  echo "FROM busybox"
  for n in 1 2 3 4 5; do echo "RUN dd if=/dev/urandom of=/layer$n bs=1M count=4 2>/dev/null"; done
} > "$work/ctx/Dockerfile"
"${sw_setup[@]}" build -t five "$work/ctx" > "$work/build.out" 2>&1 || { cat "$work/build.out" >&2; die "slipway build failed"; }
for image in busybox five; do
  "${sw_setup[@]}" tag "$image" "$src/bench/$image:1"
  "${sw_setup[@]}" push -q "$src/bench/$image:1" > /dev/null
done

# buildah's storage and configs.
b=$work/buildah
mkdir -p "$b/root" "$b/runroot" "$b/tmp" "$b/cni" "$b/shadow/run" "$b/shadow/vartmp" "$b/shadow/varcache"
chmod 1777 "$b/shadow/vartmp"
printf '%s\n' '[containers]' 'default_ulimits = []' '' '[engine]' 'runtime = "runc"' \
  'cgroup_manager = "cgroupfs"' "image_copy_tmp_dir = \"$b/tmp\"" '' '[network]' \
  'network_backend = "cni"' "network_config_dir = \"$b/cni\"" > "$b/containers.conf"
printf '%s\n' '[storage]' 'driver = "overlay"' "graphroot = \"$b/root\"" \
  "runroot = \"$b/runroot\"" > "$b/storage.conf"
buildah_do() { unshare -m --propagation private -- "$self" --buildah "$work" "$@"; }

timed() { # runs "$@" quietly, prints the seconds
  local t0 t1
  t0=$(now)
  "$@" > "$work/cmd.out" 2>&1 || { cat "$work/cmd.out" >&2; die "failed: $*"; }
  t1=$(now)
  elapsed "$t0" "$t1"
}

log "slipway: $SLIPWAY"
log "buildah: $(buildah --version)"
log "skopeo: $(skopeo --version)"
log "runs: $RUNS"

printf '%-8s %-5s %10s %10s %8s %8s\n' image op slipway other ratio target
for image in busybox five; do
  ref=$src/bench/$image:1
  # pull: into an empty store / empty buildah storage each run
  sw_times=() other_times=()
  for ((run = 1; run <= RUNS; run++)); do
    rm -rf "$work/pull-store"
    sw_times+=("$(timed "$SLIPWAY" --root "$work/pull-store" pull -q "$ref")")
    buildah_do cleanup
    other_times+=("$(buildah_do pull "$ref")")
  done
  out=$("$SLIPWAY" --root "$work/pull-store" run --rm "$ref" echo ok) || die "slipway: $ref does not run"
  [ "$out" = ok ] || die "slipway: $ref does not run"
  buildah_do check "$ref"
  s=$(median "${sw_times[@]}") o=$(median "${other_times[@]}")
  printf '%-8s %-5s %9ss %9ss %8s %8s   (other: buildah pull)\n' "$image" pull "$s" "$o" "$(ratio "$s" "$o")" "$TARGET_PULL"

  # push: slipway's store -> empty registry; skopeo from the same store's OCI layout
  sw_times=() other_times=()
  for ((run = 1; run <= RUNS; run++)); do
    fresh_target
    "${sw_setup[@]}" tag "$image" "$dst/bench/$image:1"
    sw_times+=("$(timed "${sw_setup[@]}" push -q "$dst/bench/$image:1")")
    "${sw_setup[@]}" rmi "$dst/bench/$image:1" > /dev/null
    fresh_target
    other_times+=("$(timed skopeo copy -q --dest-tls-verify=false \
      "oci:$work/setup-store/oci:$image:latest" "docker://$dst/bench/$image:1")")
  done
  s=$(median "${sw_times[@]}") o=$(median "${other_times[@]}")
  printf '%-8s %-5s %9ss %9ss %8s %8s   (other: skopeo copy oci: -> docker://)\n' "$image" push "$s" "$o" "$(ratio "$s" "$o")" "$TARGET_PUSH"

  # copy: source registry -> empty registry, no local storage
  sw_times=() other_times=()
  for ((run = 1; run <= RUNS; run++)); do
    fresh_target
    sw_times+=("$(timed "$SLIPWAY" --root "$work/copy-store" copy -q "$ref" "$dst/bench/$image:1")")
    fresh_target
    other_times+=("$(timed skopeo copy -q --src-tls-verify=false --dest-tls-verify=false \
      "docker://$ref" "docker://$dst/bench/$image:1")")
  done
  s=$(median "${sw_times[@]}") o=$(median "${other_times[@]}")
  printf '%-8s %-5s %9ss %9ss %8s %8s   (other: skopeo copy docker:// -> docker://)\n' "$image" copy "$s" "$o" "$(ratio "$s" "$o")" "$TARGET_COPY"
done
