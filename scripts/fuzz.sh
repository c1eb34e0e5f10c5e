#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang, ASan + UBSan + coverage) into build-sanitize/ and
# runs each for SECONDS (default 60), one after the other, at nice 19.
#   scripts/fuzz.sh [SECONDS] [TARGET...]     e.g. scripts/fuzz.sh 600; scripts/fuzz.sh 3600 manifest
# Each target fuzzes from its committed corpus (tests/fuzz/corpus/NAME), the seed directories of
# tests/fuzz/seeds.txt and what earlier runs found (build-sanitize/fuzz/corpus/NAME, kept between
# runs), with tests/fuzz/NAME.dict if there is one. Exits non-zero when any target found a crash,
# leak, timeout or out-of-memory; the reproducer is build-sanitize/fuzz/findings/NAME-{crash,leak,
# timeout,oom}-<sha1> and the log build-sanitize/fuzz/logs/NAME-SECONDSs.log. Replay one with
# `build-sanitize/tests/fuzz/fuzz_NAME FILE`. A summary (executions, coverage) is printed at the end
# and kept in build-sanitize/fuzz/summary-SECONDSs-{all,TARGET+...}.txt, so campaigns of different
# lengths or targets can run side by side (start them a minute apart: the build step is shared).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2; }

# nice alone does not yield to the user's other work when the kernel groups tasks by session
# (sched_autogroup, on by default): a fuzzer started with setsid or from another terminal gets a
# whole group's share. Lowering the group's weight makes nice 19 mean what it says.
echo 19 >/proc/self/autogroup 2>/dev/null || true

export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD/..}
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
scripts/install-deps.sh --with-sanitizers
CC=clang CXX=clang++ cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSLIPWAY_SANITIZE=address,undefined,fuzzer-no-link -DSLIPWAY_FUZZ=ON "${launcher[@]}" >/dev/null

mapfile -t all_targets < <(sed -n 's/^\([a-z_][a-z_]*\).*/\1/p' tests/fuzz/seeds.txt)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
nice -n 19 cmake --build build-sanitize -j "$(nproc)" --target "${targets[@]/#/fuzz_}"

out=build-sanitize/fuzz
mkdir -p "$out/findings" "$out/logs"
# Scratch files of the layer and store targets go to memory when it can.
scratch=$(mktemp -d "$( [ -d /dev/shm ] && echo /dev/shm || echo /tmp)/slipway-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

# Leaks inside third-party libraries (each explained there) are not findings.
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
failed=()
run_name=all
[ $# -gt 0 ] && run_name=$(IFS=+; echo "$*")
summary="$out/summary-${seconds}s-$run_name.txt"
printf '%-18s %8s %12s %8s %8s %8s  %s\n' target seconds executions exec/s cov ft result >"$summary"
for name in "${targets[@]}"; do
  seeds=(tests/fuzz/corpus/"$name")
  for dir in $(sed -n "s/^$name\\( \\|\$\\)//p" tests/fuzz/seeds.txt); do
    [ -d "$dir" ] && seeds+=("$dir")
  done
  dict=()
  [ -f "tests/fuzz/$name.dict" ] && dict=(-dict="tests/fuzz/$name.dict")
  mkdir -p "$out/corpus/$name"
  log="$out/logs/$name-${seconds}s.log"
  echo "fuzzing $name for ${seconds}s (log: $log)"
  status=0
  TMPDIR=$scratch nice -n 19 "build-sanitize/tests/fuzz/fuzz_$name" -max_total_time="$seconds" \
    -timeout=30 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$out/findings/$name-" "${dict[@]}" \
    "$out/corpus/$name" "${seeds[@]}" >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  result=ok
  if [ "$status" -ne 0 ]; then
    artifact=$(sed -n 's/.*Test unit written to \(.*\)/\1/p' "$log" | tail -1)
    result="FINDING (exit $status): ${artifact:-see $log}"
    failed+=("$name")
  fi
  printf '%-18s %8s %12s %8s %8s %8s  %s\n' "$name" "$seconds" "${execs:-?}" "${rate:-?}" \
    "${cov:-?}" "${ft:-?}" "$result" | tee -a "$summary"
done
echo
cat "$summary"
if [ ${#failed[@]} -gt 0 ]; then
  echo "findings in: ${failed[*]}" >&2
  exit 1
fi
