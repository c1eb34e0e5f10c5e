#!/usr/bin/env bash
# parse-bench.sh: how fast slipway's Dockerfile parser is, and how much of a fully cached build
# it costs.
#
#   1. a synthetic Dockerfile of ~5 MB (bench/gen-dockerfile.awk: stages with every instruction,
#      continuations, comments inside continuations, heredocs, JSON forms, flags), parsed with
#      `slipway parse --format dump`: lines/s and MB/s;
#   2. every Dockerfile of testdata/corpus/ and ../shared/testdata/buildkit-parser/testfiles/:
#      each is small, so this mostly measures a process start; reported as the total;
#   3. the parser's share of a warm build: a 20-step Dockerfile on busybox built once, then built
#      again fully cached (WARM_RUNS times), against `slipway parse` of the same file. The share
#      is (parse - startup) / warm build, where startup is `slipway parse` of a one-line file:
#      the process start is paid by both and is not the parser's. Target: <= 10 %.
#
# Each time is the median of RUNS (or WARM_RUNS) runs, as wall time and as CPU time (user + sys,
# from bash's `time`), the latter being what to trust on a loaded machine.
#
# Usage: bench/parse-bench.sh   (as root: part 3 builds)
# Environment: SLIPWAY (binary; default build/cli/slipway of this checkout), RUNS (5),
#              WARM_RUNS (7), SIZE_MB (5), KEEP_WORKDIR=1.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
SLIPWAY=${SLIPWAY:-$repo/build/cli/slipway}
RUNS=${RUNS:-5}
WARM_RUNS=${WARM_RUNS:-7}
SIZE_MB=${SIZE_MB:-5}
TARGET_SHARE=10
BUILD_STEPS=20
REPEAT=500

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf 'parse-bench: %s\n' "$*" >&2; exit 1; }
median() {
  printf '%s\n' "$@" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.4f", v[(NR + 1) / 2]; else printf "%.4f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# timed CMD...: runs CMD (output discarded) and prints "WALL CPU" in seconds, CPU being user +
# system time of the process and its children. CPU time is reported beside wall time because this
# machine is shared: under load the wall clock measures the queue for the cores as much as slipway.
timed() {
  local TIMEFORMAT='%R %U %S' times
  times=$({ time "$@" > /dev/null 2>&1; } 2>&1) || true
  awk '{ printf "%.4f %.4f", $1, $2 + $3 }' <<< "$times"
}
# measure N CMD...: runs CMD N times; prints the median wall time and the median CPU time.
measure() {
  local n=$1 i
  shift
  local -a walls=() cpus=()
  for ((i = 0; i < n; i++)); do
    read -r wall cpu <<< "$(timed "$@")"
    walls+=("$wall")
    cpus+=("$cpu")
  done
  printf '%s %s' "$(median "${walls[@]}")" "$(median "${cpus[@]}")"
}
parse() { "$SLIPWAY" parse --format dump -f "$1"; }

[ -x "$SLIPWAY" ] || die "no slipway binary at $SLIPWAY (build it: ninja -C build slipway)"
work=$(mktemp -d /tmp/parse-bench.XXXXXX)
cleanup() {
  if [ "${KEEP_WORKDIR:-0}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# ---- startup: the cost of running `slipway parse` at all
printf 'FROM busybox\n' > "$work/one-line.Dockerfile"
read -r startup startup_cpu <<< "$(measure "$RUNS" parse "$work/one-line.Dockerfile")"

# ---- 1. the synthetic file
awk -v target_bytes=$((SIZE_MB * 1024 * 1024)) -f "$here/gen-dockerfile.awk" > "$work/big.Dockerfile"
big_lines=$(wc -l < "$work/big.Dockerfile")
big_bytes=$(wc -c < "$work/big.Dockerfile")
"$SLIPWAY" parse --format dump -f "$work/big.Dockerfile" > "$work/big.dump" ||
  die "the synthetic Dockerfile does not parse"
read -r big_time big_cpu <<< "$(measure "$RUNS" parse "$work/big.Dockerfile")"

# ---- 2. the corpora
corpus_files=0 corpus_lines=0 corpus_time=0 corpus_cpu=0
shopt -s nullglob
for file in "$repo"/testdata/corpus/*/Dockerfile "$repo"/../shared/testdata/buildkit-parser/testfiles/*/Dockerfile; do
  # Some reference cases are meant to fail; they still cost a parse.
  read -r t c <<< "$(measure 3 parse "$file")"
  corpus_files=$((corpus_files + 1))
  corpus_lines=$((corpus_lines + $(wc -l < "$file")))
  corpus_time=$(awk -v a="$corpus_time" -v b="$t" 'BEGIN { printf "%.4f", a + b }')
  corpus_cpu=$(awk -v a="$corpus_cpu" -v b="$c" 'BEGIN { printf "%.4f", a + b }')
done

# ---- 3. the parser's share of a warm build
store=$work/store ctx=$work/ctx
mkdir -p "$ctx"
"$repo/testdata/make-busybox-rootfs.sh" "$work/busybox-rootfs.tar" > /dev/null
"$SLIPWAY" --root "$store" import "$work/busybox-rootfs.tar" busybox > /dev/null
{
  echo "FROM busybox"
  for ((i = 1; i < BUILD_STEPS; i++)); do
    case $((i % 4)) in
      0) echo "ENV STEP_$i=value-$i" ;;
      1) echo "RUN echo step $i > /step$i" ;;
      2) echo "LABEL step.$i=\"label $i\"" ;;
      3) echo "WORKDIR /work/$i" ;;
    esac
  done
} > "$ctx/Dockerfile"
"$SLIPWAY" --root "$store" build -t bench "$ctx" > "$work/cold.log" || die "the cold build failed"
"$SLIPWAY" --root "$store" build -t bench "$ctx" > "$work/warm.log"
hits=$(grep -c 'Using cache' "$work/warm.log" || true)
[ "$hits" -eq $((BUILD_STEPS - 1)) ] || die "warm build: $hits of $((BUILD_STEPS - 1)) steps came from the cache"
read -r warm warm_cpu <<< "$(measure "$WARM_RUNS" "$SLIPWAY" --root "$store" build -t bench "$ctx")"
read -r step_parse step_parse_cpu <<< "$(measure "$RUNS" parse "$ctx/Dockerfile")"
# One parse of a 20-line file is below the clock's resolution and drowned in process startup, so
# the parser's own time for it is taken from a file holding it REPEAT times (a valid Dockerfile:
# REPEAT stages): (time - startup) / REPEAT.
for ((i = 0; i < REPEAT; i++)); do cat "$ctx/Dockerfile"; done > "$work/repeated.Dockerfile"
read -r repeated repeated_cpu <<< "$(measure "$RUNS" parse "$work/repeated.Dockerfile")"

# ---- report
awk -v startup="$startup" -v startup_cpu="$startup_cpu" \
  -v lines="$big_lines" -v bytes="$big_bytes" -v t="$big_time" -v c="$big_cpu" \
  -v cf="$corpus_files" -v cl="$corpus_lines" -v ct="$corpus_time" -v cc="$corpus_cpu" \
  -v warm="$warm" -v warm_cpu="$warm_cpu" -v sp="$step_parse" -v sp_cpu="$step_parse_cpu" \
  -v rp="$repeated" -v rp_cpu="$repeated_cpu" -v repeat="$REPEAT" \
  -v target="$TARGET_SHARE" -v steps="$BUILD_STEPS" '
function own(total, base) { x = (total - base) / repeat; return x < 0 ? 0 : x }
BEGIN {
  printf "                                   wall          cpu (user+sys)\n"
  printf "startup (parse of a 1-line file)   %8.1f ms   %8.1f ms\n", startup * 1000, startup_cpu * 1000
  printf "synthetic: %d lines, %.2f MB\n", lines, bytes / 1048576
  printf "  parse                            %8.3f s    %8.3f s\n", t, c
  printf "  lines/s                          %8.0f      %8.0f\n", lines / t, lines / c
  printf "  MB/s                             %8.2f      %8.2f\n", bytes / 1048576 / t, bytes / 1048576 / c
  if (cf > 0) {
    printf "corpus: %d files, %d lines (each parse is mostly process startup)\n", cf, cl
    printf "  all files                        %8.3f s    %8.3f s\n", ct, cc
    printf "  a file                           %8.1f ms   %8.1f ms\n", ct / cf * 1000, cc / cf * 1000
    printf "  lines/s                          %8.0f      %8.0f\n", cl / ct, cl / cc
  }
  printf "warm (fully cached) build, %d steps\n", steps
  printf "  build                            %8.1f ms   %8.1f ms\n", warm * 1000, warm_cpu * 1000
  printf "  slipway parse of its Dockerfile  %8.1f ms   %8.1f ms   (mostly startup)\n", sp * 1000, sp_cpu * 1000
  printf "  the parser itself on it          %8.3f ms   %8.3f ms   (%d copies in one file)\n",
    own(rp, startup) * 1000, own(rp_cpu, startup_cpu) * 1000, repeat
  share_wall = own(rp, startup) / warm * 100
  share_cpu = own(rp_cpu, startup_cpu) / warm_cpu * 100
  printf "  parser share of the build        %8.2f %%    %8.2f %%   (target <= %d %%)\n",
    share_wall, share_cpu, target
  printf "parser share of a warm build: %s\n", share_cpu <= target ? "within target" : "OVER TARGET"
}'
