#!/usr/bin/env bash
# layer-bench.sh: slipway's layer creation and application against tar+gzip, tar+igzip and umoci,
# on a Debian root filesystem made by mmdebstrap (minbase, about 170 MB), all in one run.
#
#   create+compress: slipway (write_layer_tar -> LayerBlobWriter gzip, both digests; the writer
#                    compresses and writes on threads of its own), the same all on one thread
#                    (`caller-thread`, as before the threads), vs `tar -cf - . | gzip -6`,
#                    `tar -cf - . | igzip -1`, `umoci repack`
#   apply:           slipway (open_tar_file -> apply_layer_tar into an empty dir)
#                    vs `tar -xzf` (of slipway's blob), `umoci unpack` (of umoci's own image)
#
# Each measurement is repeated RUNS times, the tools taking turns, and the median wall time is
# reported with the ratio slipway/peer and the issue's targets (create+compress at least 5x faster
# than umoci, apply at least 3x faster than umoci). See bench/README.md.
#
# Usage: bench/layer-bench.sh   (as root)
# Environment: LAYER_BENCH (binary; default build/bench/slipway_layer_bench of this checkout),
#              RUNS (3), ROOTFS (use this tree instead of making one; it is only read),
#              KEEP_WORKDIR=1 (keep the temp dir for inspection), BENCH_TMP (where the temp dir
#              goes, default /tmp: a freshly made filesystem there avoids ext4's slow inode
#              allocation after mass deletions, see bench/README.md),
#              PRIORITY=1 (run in a session of its own whose scheduler autogroup has nice -20, so
#              that other work on the machine yields the CPU while the bench runs: close to a
#              quiet machine, for every tool alike).
#
# If mmdebstrap cannot make the rootfs (no mirror reachable), a copy of part of /usr of about the
# same size is used instead, and the output says so.
set -euo pipefail

# With autogroup scheduling (kernel.sched_autogroup_enabled) each session gets an equal share of
# the CPU whatever the nice values of its processes, so the priority is set on a session of the
# bench's own.
if [ "${PRIORITY:-0}" = 1 ] && [ -z "${LAYER_BENCH_PRIORITY_SET:-}" ]; then
  export LAYER_BENCH_PRIORITY_SET=1
  exec setsid --wait bash -c 'echo -20 > /proc/$$/autogroup || echo "layer-bench: cannot raise the priority" >&2; exec "$0" "$@"' "$0" "$@"
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
LAYER_BENCH=${LAYER_BENCH:-$repo/build/bench/slipway_layer_bench}
RUNS=${RUNS:-3}
TARGET_CREATE=5
TARGET_APPLY=3
FALLBACK_MB=170

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf 'layer-bench: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() {
  printf '%s\n' "$@" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

[ "$(id -u)" -eq 0 ] || die "run as root (the rootfs has root-owned files, device nodes, setuid bits)"
[ -x "$LAYER_BENCH" ] || die "no benchmark binary at $LAYER_BENCH (cmake --build build --target slipway_layer_bench, or set LAYER_BENCH)"
missing=()
command -v umoci > /dev/null || missing+=(umoci)
command -v igzip > /dev/null || missing+=(isal)
[ -n "${ROOTFS:-}" ] || command -v mmdebstrap > /dev/null || missing+=(mmdebstrap)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2
fi

work=$(mktemp -d "${BENCH_TMP:-/tmp}/slipway-layer-bench.XXXXXX")
cleanup() {
  local rc=$?
  trap - EXIT
  if [ "${KEEP_WORKDIR:-0}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
chmod 755 "$work"

# ---------------------------------------------------------------------------------------------
# The tree: ROOTFS, else a Debian minbase rootfs from mmdebstrap (the host's own suite and apt
# sources), else part of /usr.
if [ -n "${ROOTFS:-}" ]; then
  tree=$ROOTFS
  tree_desc="$ROOTFS (given)"
else
  tree=$work/rootfs
  suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-stable}")
  sources=()
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -s "$f" ] && sources+=("$f")
  done
  log "making a Debian $suite minbase rootfs with mmdebstrap (apt sources: ${sources[*]:-none, mmdebstrap default})"
  t0=$(now)
  if mmdebstrap --variant=minbase --mode=root --format=directory --quiet \
    "$suite" "$tree" "${sources[@]}" < /dev/null > "$work/mmdebstrap.log" 2>&1; then
    tree_desc="Debian $suite minbase rootfs (mmdebstrap, $(elapsed "$t0" "$(now)") s to make)"
  else
    log "mmdebstrap failed (last lines below); falling back to a copy of part of /usr"
    tail -5 "$work/mmdebstrap.log" >&2
    rm -rf "$tree"
    mkdir -p "$tree"
    # Whole directories of /usr/share, then /usr/bin and /usr/lib, until about FALLBACK_MB.
    for d in /usr/share/* /usr/bin /usr/sbin /usr/lib/*; do
      [ -d "$d" ] && [ ! -L "$d" ] || continue
      cp -a --parents "$d" "$tree/"
      [ "$(du -sm "$tree" | cut -f1)" -lt "$FALLBACK_MB" ] || break
    done
    tree_desc="FALLBACK (mmdebstrap could not run): a copy of part of /usr, not a Debian rootfs"
  fi
fi
tree_mb=$(du -sm "$tree" | cut -f1)
tree_entries=$(find "$tree" -mindepth 1 | wc -l)
log "tree: $tree_desc: $tree_mb MB, $tree_entries entries"

# What a tree holds, times and xattrs aside (a check that every tool made or restored the whole tree).
# (Directory sizes are left out: they depend on the order entries were made in.)
listing() {
  (cd "$1" && find . -mindepth 1 -printf '%P\t%y %m %U %G %s %l\n') |
    awk -F'\t' '{ split($2, f, " "); if (f[1] == "d") sub(/ [0-9]+ $/, " - ", $2); print $1 "\t" $2 }' |
    LC_ALL=C sort
}
listing "$tree" > "$work/tree.list"
check_tree() { # DIR WHAT
  listing "$1" > "$work/check.list"
  cmp -s "$work/tree.list" "$work/check.list" ||
    { diff "$work/tree.list" "$work/check.list" | head -20 >&2; die "$2 did not give the same tree"; }
}

tar_flags=(--numeric-owner --xattrs --xattrs-include='*')

# ---------------------------------------------------------------------------------------------
# One timed step each; each prints "WALL CPU" in seconds, CPU being user + system time of the
# step and its children (so also the second core's share). Untimed preparation comes before `sync`.
# Every run writes into its own dir ($out) and nothing is deleted until the end: ext4 allocates
# inodes slowly for a while after many were deleted (the kernel's recently_deleted() check in
# find_inode_bit; seen here as apply times going from 1 s to 5-8 s, all of it system time), which
# would charge whichever tool came after an `rm -rf`.
# timed STDOUT_FILE COMMAND...
timed() {
  local tf=$out/time.out stdout=$1 TIMEFORMAT='%R %U %S'
  shift
  { time "$@" > "$stdout" 2>&3; } 3>&2 2> "$tf"
  awk 'END { printf "%.3f %.3f", $1, $2 + $3 }' "$tf"
}
tar_create() { # COMPRESSOR ARGS...
  tar -C "$tree" "${tar_flags[@]}" -cf - . | "$@" -c > "$out/$1.tar.gz"
}
# Reads the whole tree (directories and file contents) into the page cache, untimed. Memory
# pressure from elsewhere on the machine can evict parts of it between runs, and the first tool
# of a run would then pay for the disk reads of all the others (seen in perf as getdents64 and
# read waiting on I/O).
warm_tree() {
  find "$tree" -type f -print0 | xargs -0 cat > /dev/null
}
create_slipway() {
  warm_tree
  sync
  timed "$out/slipway-create.out" "$LAYER_BENCH" create "$tree" "$out/slipway.tar.gz" gzip
  log "  slipway: $(cat "$out/slipway-create.out")"
}
# The same with every stage on the calling thread; its blob must be the same bytes.
create_slipway_one_thread() {
  warm_tree
  sync
  timed "$out/slipway1-create.out" "$LAYER_BENCH" create "$tree" "$out/slipway1.tar.gz" gzip \
    caller-thread
  log "  slipway (one thread): $(cat "$out/slipway1-create.out")"
}
create_tar() { # gzip -6 | igzip -1
  warm_tree
  sync
  timed /dev/null tar_create "$@"
}
# umoci repack of a bundle whose rootfs holds the tree (fresh layout and bundle each time).
create_umoci() {
  local l=$out/umoci-layout b=$out/umoci-bundle
  umoci init --layout "$l"
  umoci new --image "$l:t"
  umoci unpack --image "$l:t" "$b" > /dev/null
  cp -a "$tree/." "$b/rootfs/"
  sync
  timed /dev/null umoci repack --image "$l:t" "$b"
}
apply_slipway() {
  sync
  timed "$out/slipway-apply.out" "$LAYER_BENCH" apply "$out/slipway.tar.gz" "$out/slipway-target"
  log "  slipway: $(cat "$out/slipway-apply.out")"
}
apply_tar() {
  mkdir "$out/tar-target"
  sync
  timed /dev/null tar -C "$out/tar-target" "${tar_flags[@]}" -xzf "$out/slipway.tar.gz"
}
apply_umoci() {
  sync
  timed /dev/null umoci unpack --image "$out/umoci-layout:t" "$out/umoci-unpacked"
}
# record KEY STEP ARGS...: runs the step, appends its wall and CPU seconds to wall_KEY and cpu_KEY.
record() {
  local -n wall_arr=wall_$1 cpu_arr=cpu_$1
  local w c
  read -r w c <<< "$("${@:2}")"
  wall_arr+=("$w")
  cpu_arr+=("$c")
}

log "layer bench: $LAYER_BENCH"
log "peers: $(gzip --version | head -1), igzip $(igzip --version 2>&1 | head -1 | awk '{print $NF}'), $(umoci --version)"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
priority=$(cat /proc/self/autogroup 2> /dev/null || echo "no autogroup")
log "runs: x$RUNS, taking turns; $(nproc) cores; load $load0; scheduler group $priority"

keys=(c_sw c_s1 c_gz c_ig c_um a_sw a_tar a_um)
for k in "${keys[@]}"; do declare -a "wall_$k=()" "cpu_$k=()"; done
for ((i = 1; i <= RUNS; i++)); do
  out=$work/run$i
  mkdir "$out"
  record c_sw create_slipway
  record c_s1 create_slipway_one_thread
  record c_gz create_tar gzip -6
  record c_ig create_tar igzip -1
  record c_um create_umoci
  log "create #$i (wall s): slipway ${wall_c_sw[-1]}  one thread ${wall_c_s1[-1]}  tar|gzip -6 ${wall_c_gz[-1]}  tar|igzip -1 ${wall_c_ig[-1]}  umoci repack ${wall_c_um[-1]}"
  record a_sw apply_slipway
  record a_tar apply_tar
  record a_um apply_umoci
  log "apply #$i (wall s): slipway ${wall_a_sw[-1]}  tar -xzf ${wall_a_tar[-1]}  umoci unpack ${wall_a_um[-1]}"
  if [ "$i" -eq 1 ]; then
    # Each tool made or restored the whole tree: names, types, modes, owners, sizes, link targets.
    check_tree "$out/slipway-target" "slipway apply"
    check_tree "$out/tar-target" "tar -xzf"
    check_tree "$out/umoci-unpacked/rootfs" "umoci unpack"
    # umoci's image holds exactly one layer: the whole tree.
    if command -v jq > /dev/null; then
      [ "$(jq '.manifests | length' "$out/umoci-layout/index.json")" = 1 ] || die "umoci layout: not one image"
      [ "$(jq '.layers | length' "$out/umoci-layout/blobs/sha256/$(jq -r '.manifests[0].digest' \
        "$out/umoci-layout/index.json" | cut -d: -f2)")" = 1 ] || die "umoci image: not one layer"
    fi
    # Threads or not, slipway writes the same blob.
    cmp -s "$out/slipway.tar.gz" "$out/slipway1.tar.gz" || die "slipway's blob differs between threaded and one-thread runs"
    # Both compressed streams decompress to what was written.
    gzip -t "$out/slipway.tar.gz" "$out/gzip.tar.gz" "$out/igzip.tar.gz"
  fi
done

tar_bytes=$(awk '{ for (i = 1; i < NF; i++) if ($i == "tar") print $(i + 1) }' "$out/slipway-create.out")
blob_size() { stat -c %s "$1"; }
umoci_blob=$(find "$out/umoci-layout/blobs/sha256" -type f -size +1M -printf '%s\n' | sort -n | tail -1)

# NAME SECONDS: "NAME 1.234 s (123.4 MB/s)" with MB/s of the uncompressed tar.
fmt() { awk -v n="$1" -v s="$2" -v b="$tar_bytes" 'BEGIN { printf "%s %.3f s (%.1f MB/s)", n, s, b / 1e6 / s }'; }
# SLIPWAY PEER_NAME PEER: "vs NAME: ratio 0.123 (8.1x faster)"
ratio() {
  awk -v s="$1" -v n="$2" -v p="$3" 'BEGIN { printf "  vs %-14s slipway/peer %.3f  (slipway %.1fx %s)\n", n ":", s / p, (s < p ? p / s : s / p), (s < p ? "faster" : "slower") }'
}
target() { # WHAT SLIPWAY UMOCI TARGET
  awk -v w="$1" -v s="$2" -v u="$3" -v t="$4" 'BEGIN { x = u / s; printf "target: %s at least %dx faster than umoci: %.1fx, %s\n", w, t, x, (x >= t ? "met" : "NOT met") }'
}

m() { local -n arr=$1; median "${arr[@]}"; }
ms=$(m wall_c_sw) m1=$(m wall_c_s1) mg=$(m wall_c_gz) mi=$(m wall_c_ig) mu=$(m wall_c_um)
as=$(m wall_a_sw) at=$(m wall_a_tar) au=$(m wall_a_um)
echo "layer-bench: $(date -u +%Y-%m-%dT%H:%M:%SZ); $(nproc) cores; load before $load0, after $(cut -d' ' -f1-3 /proc/loadavg); $priority; median of $RUNS runs; MB/s of the uncompressed tar"
echo "tree: $tree_desc: $tree_mb MB on disk, $tree_entries entries, layer tar $tar_bytes B"
echo "blobs: slipway (igzip level 1) $(blob_size "$out/slipway.tar.gz") B, gzip -6 $(blob_size "$out/gzip.tar.gz") B, igzip -1 $(blob_size "$out/igzip.tar.gz") B, umoci ${umoci_blob:-?} B"
echo "samples create wall: slipway ${wall_c_sw[*]}  slipway-one-thread ${wall_c_s1[*]}  gzip-6 ${wall_c_gz[*]}  igzip-1 ${wall_c_ig[*]}  umoci ${wall_c_um[*]}"
echo "samples apply wall: slipway ${wall_a_sw[*]}  tar-xzf ${wall_a_tar[*]}  umoci ${wall_a_um[*]}"
echo "median CPU s (user+sys): create slipway $(m cpu_c_sw)  slipway-one-thread $(m cpu_c_s1)  gzip-6 $(m cpu_c_gz)  igzip-1 $(m cpu_c_ig)  umoci $(m cpu_c_um); apply slipway $(m cpu_a_sw)  tar-xzf $(m cpu_a_tar)  umoci $(m cpu_a_um)"
echo "create+compress: $(fmt slipway "$ms")  $(fmt 'slipway one thread' "$m1")  $(fmt 'tar|gzip -6' "$mg")  $(fmt 'tar|igzip -1' "$mi")  $(fmt 'umoci repack' "$mu")"
ratio "$ms" "one thread" "$m1"
ratio "$ms" "tar|gzip -6" "$mg"
ratio "$ms" "tar|igzip -1" "$mi"
ratio "$ms" "umoci repack" "$mu"
echo "apply: $(fmt slipway "$as")  $(fmt 'tar -xzf' "$at")  $(fmt 'umoci unpack' "$au")"
ratio "$as" "tar -xzf" "$at"
ratio "$as" "umoci unpack" "$au"
target "create+compress" "$ms" "$mu" "$TARGET_CREATE"
target "apply" "$as" "$au" "$TARGET_APPLY"
