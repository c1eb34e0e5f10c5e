#!/usr/bin/env bash
# registry-bench.sh: slipway's registry client against buildah and skopeo, side by side, with the
# same local docker-registry (distribution 2.8, plain http on 127.0.0.1) and three images:
#   busybox: the busybox-static rootfs (testdata/make-busybox-rootfs.sh), one small layer;
#   five:    FROM busybox plus 5 layers of 4 MiB of /dev/urandom each (slipway build);
#   debian:  a Debian minbase rootfs of the host's suite made by mmdebstrap (~170 MB, one layer),
#            imported with `slipway import`. The tarball is cached (DEBIAN_TAR, default
#            /var/tmp/slipway-registry-bench/debian-SUITE-minbase.tar) and made when absent; if
#            mmdebstrap cannot make it, the debian rows are skipped and the output says so.
#
#   pull: slipway pull into an empty store   vs  buildah pull into empty overlay storage
#         (both end with the image unpacked; checked by running it)
#   push: slipway push to an empty registry  vs  skopeo copy oci:<slipway's layout> docker://...
#   copy: slipway copy registry -> registry  vs  skopeo copy docker:// -> docker://
#   floor: the registry alone taking the image's largest blob from curl (POST + one PUT), no
#         client logic: the part of a push or copy that no client can make faster
#
# Every timed command starts after an untimed `sync`, as in layer-bench.sh: a tool that leaves its
# files dirty (buildah does not sync what it unpacks) would otherwise hand that writeback to the
# next command, and slipway's pull, which makes what it stored durable with syncfs, would wait
# for the previous buildah pull's files too.
#
# Each measurement runs RUNS times (default 3), the tools taking turns; the median wall time and
# the ratio slipway/other are printed with the issue's targets (pull <= 0.33, push and copy
# <= 0.8). Push and copy go to a second registry whose storage is wiped before every run, so no
# blob is already there and nothing can be mounted.
#
# Then the peak memory of `slipway pull` of an image with one 1 GiB layer of random bytes (so the
# blob is ~1 GiB too) into an empty store: the maximum resident set size from /usr/bin/time
# (target under 64 MiB). BIG_MIB changes the layer size; BIG_MIB=0 skips it.
#
# Usage: bench/registry-bench.sh   (as root: slipway build and buildah's overlay storage)
# Environment: SLIPWAY (binary; default build/cli/slipway of this checkout), RUNS (3),
#              IMAGES ("busybox five debian"), DEBIAN_TAR (see above), BIG_MIB (1024),
#              KEEP_WORKDIR=1 (keep the temp dir), PRIORITY=1 (run in a session of its own
#              whose scheduler autogroup has nice -20, as layer-bench.sh does, so that other work
#              on the machine yields the CPU while the bench runs, for every tool alike).
#
# buildah is confined as in build-bench.sh: its own --root/--runroot, containers.conf and
# storage.conf in the temp dir, and each invocation in a private mount namespace where /etc and
# /var/lib are read-only and /run, /var/tmp, /var/cache are temp dirs.
set -euo pipefail

# With autogroup scheduling each session gets an equal share of the CPU whatever the nice values
# inside it, so the priority is set on a session of the bench's own.
if [ "${PRIORITY:-0}" = 1 ] && [ -z "${REGISTRY_BENCH_PRIORITY_SET:-}" ]; then
  export REGISTRY_BENCH_PRIORITY_SET=1
  exec setsid --wait bash -c 'echo -20 > /proc/$$/autogroup || echo "registry-bench: cannot raise the priority" >&2; exec "$0" "$@"' "$0" "$@"
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self="$here/$(basename "${BASH_SOURCE[0]}")"
repo=$(cd "$here/.." && pwd)
SLIPWAY=${SLIPWAY:-$repo/build/cli/slipway}
RUNS=${RUNS:-3}
IMAGES=${IMAGES:-busybox five debian}
BIG_MIB=${BIG_MIB:-1024}
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-stable}")
DEBIAN_TAR=${DEBIAN_TAR:-/var/tmp/slipway-registry-bench/debian-$suite-minbase.tar}
TARGET_RSS_MIB=64
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
# The buildah side: `registry-bench.sh --buildah WORK ACTION STORE IMAGE`, run inside
# `unshare -m`, with its storage in WORK/buildah/stores/STORE (root and runroot).
# ACTION: pull (prints the seconds) | check | cleanup.
buildah_action() {
  local work=$1 action=$2 store=$1/buildah/stores/$3 image=${4:-} b=$1/buildah
  mount --make-rprivate /
  mount --bind "$b/shadow/run" /run
  mount --bind "$b/shadow/vartmp" /var/tmp
  mount --bind "$b/shadow/varcache" /var/cache
  mount --bind -o ro /etc /etc
  mount --bind -o ro /var/lib /var/lib
  export CONTAINERS_CONF=$b/containers.conf CONTAINERS_STORAGE_CONF=$b/storage.conf TMPDIR=$b/tmp
  mkdir -p "$store/root" "$store/runroot"
  local -a bh=(buildah --root "$store/root" --runroot "$store/runroot" --storage-driver overlay)
  local t0 t1 ctr out
  case $action in
    pull)
      sync
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
  umount_below "$store/root"
  umount_below "$store/runroot"
}

if [ "${1:-}" = "--buildah" ]; then
  buildah_action "$2" "$3" "$4" "${5:-}"
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
  local store
  for store in "$work"/buildah/stores/*; do
    [ -d "$store" ] || continue
    unshare -m --propagation private -- "$self" --buildah "$work" cleanup "${store##*/}" || true
  done
  umount_below "$work"
  [ -n "${debian_part:-}" ] && rm -f "$debian_part"
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

# The Debian rootfs tarball: the cached one, else made by mmdebstrap (the host's suite and apt
# sources) and cached. Fails (returns 1) when mmdebstrap cannot make it.
debian_part=
debian_tar_ready() {
  [ -s "$DEBIAN_TAR" ] && return 0
  command -v mmdebstrap > /dev/null || { log "no mmdebstrap (scripts/install-deps.sh --with-peers)"; return 1; }
  local -a sources=()
  local f t0
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -s "$f" ] && sources+=("$f")
  done
  mkdir -p "$(dirname "$DEBIAN_TAR")"
  debian_part=$DEBIAN_TAR.part.$$
  log "making $DEBIAN_TAR with mmdebstrap (minbase $suite; apt sources: ${sources[*]:-mmdebstrap default})"
  t0=$(now)
  if mmdebstrap --variant=minbase --mode=root --format=tar --quiet "$suite" "$debian_part" \
    "${sources[@]}" < /dev/null > "$work/mmdebstrap.log" 2>&1; then
    mv "$debian_part" "$DEBIAN_TAR"
    debian_part=
    log "made in $(elapsed "$t0" "$(now)") s"
    return 0
  fi
  log "mmdebstrap failed (last lines below)"
  tail -5 "$work/mmdebstrap.log" >&2
  rm -f "$debian_part"
  debian_part=
  return 1
}

# The images, made and pushed by slipway once.
sw_setup=("$SLIPWAY" --root "$work/setup-store")
"$repo/testdata/make-busybox-rootfs.sh" "$work/busybox-rootfs.tar"
"${sw_setup[@]}" import "$work/busybox-rootfs.tar" busybox > /dev/null
images=()
skipped=()
for image in $IMAGES; do
  case $image in
    busybox) ;;
    five)
      mkdir -p "$work/ctx"
      {
        echo "FROM busybox"
        for n in 1 2 3 4 5; do echo "RUN dd if=/dev/urandom of=/layer$n bs=1M count=4 2>/dev/null"; done
      } > "$work/ctx/Dockerfile"
      "${sw_setup[@]}" build -t five "$work/ctx" > "$work/build.out" 2>&1 ||
        { cat "$work/build.out" >&2; die "slipway build failed"; }
      ;;
    debian)
      if ! debian_tar_ready; then
        skipped+=("debian (mmdebstrap could not make $DEBIAN_TAR)")
        continue
      fi
      "${sw_setup[@]}" import "$DEBIAN_TAR" debian > /dev/null
      ;;
    *) die "unknown image $image (IMAGES takes busybox, five, debian)" ;;
  esac
  "${sw_setup[@]}" tag "$image" "$src/bench/$image:1"
  "${sw_setup[@]}" push -q "$src/bench/$image:1" > /dev/null
  images+=("$image")
done

# buildah's storage and configs.
b=$work/buildah
mkdir -p "$b/stores" "$b/tmp" "$b/cni" "$b/shadow/run" "$b/shadow/vartmp" "$b/shadow/varcache"
chmod 1777 "$b/shadow/vartmp"
printf '%s\n' '[containers]' 'default_ulimits = []' '' '[engine]' 'runtime = "runc"' \
  'cgroup_manager = "cgroupfs"' "image_copy_tmp_dir = \"$b/tmp\"" '' '[network]' \
  'network_backend = "cni"' "network_config_dir = \"$b/cni\"" > "$b/containers.conf"
printf '%s\n' '[storage]' 'driver = "overlay"' "graphroot = \"$b/stores/default/root\"" \
  "runroot = \"$b/stores/default/runroot\"" > "$b/storage.conf"
buildah_do() { unshare -m --propagation private -- "$self" --buildah "$work" "$@"; }

timed() { # runs "$@" quietly, prints the seconds
  local t0 t1
  sync
  t0=$(now)
  "$@" > "$work/cmd.out" 2>&1 || { cat "$work/cmd.out" >&2; die "failed: $*"; }
  t1=$(now)
  elapsed "$t0" "$t1"
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
log "slipway: $SLIPWAY"
log "buildah: $(buildah --version)"
log "skopeo: $(skopeo --version)"
log "runs: $RUNS"
# layer_bytes IMAGE: the number of layers of the image in the source registry, and their blob
# sizes summed.
layer_bytes() {
  curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$src/v2/bench/$1/manifests/1" |
    python3 -c 'import json, sys; m = json.load(sys.stdin); print(len(m["layers"]), sum(l["size"] for l in m["layers"]))'
}
for image in "${images[@]}"; do
  read -r n bytes < <(layer_bytes "$image")
  log "$image: $n layers, $bytes B of layer blobs"
done

# largest_layer IMAGE: the digest and size of the image's largest layer blob in the source
# registry.
largest_layer() {
  curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$src/v2/bench/$1/manifests/1" |
    python3 -c 'import json, sys; l = max(json.load(sys.stdin)["layers"], key=lambda l: l["size"]); print(l["digest"], l["size"])'
}
# upload_with_curl FILE DIGEST: POST an upload session to the target registry, PUT the file.
upload_with_curl() {
  local location
  location=$(curl -fsS -D - -o /dev/null -X POST "http://$dst/v2/bench/floor/blobs/uploads/" |
    awk 'tolower($1) == "location:" { sub(/\r$/, "", $2); print $2 }') || return 1
  [ -n "$location" ] || { echo "floor: the registry's POST gave no Location" >&2; return 1; }
  case $location in http*) ;; *) location=http://$dst$location ;; esac
  case $location in *\?*) location=$location\&digest=$2 ;; *) location=$location\?digest=$2 ;; esac
  curl -fsS -o /dev/null -X PUT -H 'Expect:' -H 'Content-Type: application/octet-stream' \
    --upload-file "$1" "$location"
}
echo "registry-bench: $(date -u +%FT%TZ); $(nproc) cores; load before $load0; scheduler group $(cat /proc/self/autogroup 2> /dev/null || echo none); median of $RUNS runs, tools taking turns"
printf '%-8s %-5s %10s %10s %8s %8s\n' image op slipway other ratio target
samples=()
# row IMAGE OP TARGET WHAT: prints the medians of sw_times and other_times with their ratio.
row() {
  local s o
  s=$(median "${sw_times[@]}") o=$(median "${other_times[@]}")
  printf '%-8s %-5s %9ss %9ss %8s %8s   (other: %s)\n' "$1" "$2" "$s" "$o" "$(ratio "$s" "$o")" "$3" "$4"
  samples+=("samples $1 $2: slipway ${sw_times[*]}  other ${other_times[*]}")
}
for image in "${images[@]}"; do
  ref=$src/bench/$image:1
  # pull: into a new empty store / new empty buildah storage each run. Nothing is deleted
  # until every image is done: on ext4, creating many files shortly after deleting many is slow
  # (see layer-bench.sh), and that would fall on whichever tool came next.
  sw_times=() other_times=()
  for ((run = 1; run <= RUNS; run++)); do
    sw_times+=("$(timed "$SLIPWAY" --root "$work/pull-$image-$run" pull -q "$ref")")
    other_times+=("$(buildah_do pull "$image-$run" "$ref")")
  done
  out=$("$SLIPWAY" --root "$work/pull-$image-$RUNS" run --rm "$ref" echo ok) || die "slipway: $ref does not run"
  [ "$out" = ok ] || die "slipway: $ref does not run"
  buildah_do check "$image-$RUNS" "$ref"
  row "$image" pull "$TARGET_PULL" "buildah pull"

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
  row "$image" push "$TARGET_PUSH" "skopeo copy oci: -> docker://"

  # floor: the registry alone taking the image's largest blob from curl (POST, then one PUT
  # streamed from the file), no client logic: what no push or copy of the image can beat.
  floor_layer=$(largest_layer "$image") || die "cannot read the manifest of bench/$image"
  read -r floor_digest floor_bytes <<< "$floor_layer"
  floor_file=$work/setup-store/oci/blobs/sha256/${floor_digest#sha256:}
  sw_times=() other_times=()
  for ((run = 1; run <= RUNS; run++)); do
    fresh_target
    sw_times+=("$(timed upload_with_curl "$floor_file" "$floor_digest")")
  done
  s=$(median "${sw_times[@]}")
  printf '%-8s %-5s %9ss %10s %8s %8s   (the registry alone taking the %s B blob: curl POST + PUT)\n' \
    "$image" floor "$s" - - - "$floor_bytes"
  samples+=("samples $image floor: curl ${sw_times[*]}")

  # copy: source registry -> empty registry, no local storage
  sw_times=() other_times=()
  for ((run = 1; run <= RUNS; run++)); do
    fresh_target
    sw_times+=("$(timed "$SLIPWAY" --root "$work/copy-store" copy -q "$ref" "$dst/bench/$image:1")")
    fresh_target
    other_times+=("$(timed skopeo copy -q --src-tls-verify=false --dest-tls-verify=false \
      "docker://$ref" "docker://$dst/bench/$image:1")")
  done
  row "$image" copy "$TARGET_COPY" "skopeo copy docker:// -> docker://"
done
[ -n "$target_pid" ] && stop_registry "$target_pid" && target_pid= && rm -rf "$work/target"
for store in "$b"/stores/*; do
  [ -d "$store" ] || continue
  buildah_do cleanup "${store##*/}"
  umount_below "$store"
  rm -rf "$store"
done
rm -rf "$work"/pull-*
for line in "${skipped[@]}"; do echo "skipped: $line"; done

# Peak memory of a pull of one big layer of random bytes (gzip cannot shrink it, so the blob is
# as big as the layer): an image of one file, imported from a tar that python writes straight
# from /dev/urandom (no second copy of the file on disk).
if [ "$BIG_MIB" -gt 0 ]; then
  python3 - "$work/big.tar" "$BIG_MIB" << 'PY'
import sys, tarfile
with open("/dev/urandom", "rb") as source, tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as tar:
    info = tarfile.TarInfo("big.bin")
    info.size = int(sys.argv[2]) << 20
    info.mode = 0o644
    tar.addfile(info, source)
PY
  "${sw_setup[@]}" import "$work/big.tar" big > /dev/null
  rm -f "$work/big.tar"
  "${sw_setup[@]}" tag big "$src/bench/big:1"
  "${sw_setup[@]}" push -q "$src/bench/big:1" > /dev/null
  "${sw_setup[@]}" rmi big "$src/bench/big:1" > /dev/null
  "${sw_setup[@]}" image prune -a -f > /dev/null
  read -r _ big_blob < <(layer_bytes big)
  rm -rf "$work/big-store"
  t0=$(now)
  /usr/bin/time -f '%M %e %U %S' -o "$work/big.time" "$SLIPWAY" --root "$work/big-store" pull -q "$src/bench/big:1" \
    > "$work/cmd.out" 2>&1 || { cat "$work/cmd.out" >&2; die "slipway pull of the big image failed"; }
  t1=$(now)
  read -r rss_kib _ user_s sys_s < "$work/big.time"
  got=$(find "$work/big-store/layers" -name big.bin -size "${BIG_MIB}M" | wc -l)
  [ "$got" = 1 ] || die "the pulled big image has no ${BIG_MIB} MiB /big.bin"
  rss_mib=$(awk -v k="$rss_kib" 'BEGIN { printf "%.1f", k / 1024 }')
  met=$(awk -v m="$rss_mib" -v t="$TARGET_RSS_MIB" 'BEGIN { print (m < t) ? "met" : "NOT met" }')
  secs=$(elapsed "$t0" "$t1")
  echo "peak memory: slipway pull of one ${BIG_MIB} MiB layer (blob $big_blob B) into an empty store: max RSS $rss_mib MiB (target < $TARGET_RSS_MIB MiB: $met); $secs s wall, ${user_s} s user, ${sys_s} s sys"
  rm -rf "$work/big-store"
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
for line in "${samples[@]}"; do echo "$line"; done
