#!/usr/bin/env bash
# The sanitizer step (README "Which tests run where"), run by scripts/test.sh after the main suite.
# About 25 CPU-minutes on this 2-core machine (build and run), 12-13 minutes of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
# Sanitizer step (README "Tests"): a clang build with AddressSanitizer and UndefinedBehavior-
# Sanitizer in build-sanitize/ (with the coverage hooks the fuzz targets need, so that
# scripts/fuzz.sh reuses it), running the unit tests, the integration tests below (the slipway
# binary they drive is the sanitized one) and one replay of every fuzz target's corpus. Any
# sanitizer report aborts the process, which fails its test.
sanitized_tests=(
  # unit tests: every one
  grammar_test store_test layer_test runtime_test shell_words_test build_context_test
  file_copy_test store_gc_test registry_unit_test layer_interop_test pull_progress_test
  container_state_test template_test network_unit_test run_network_files_test
  volume_tree_copy_test
  # integration: the parser CLI and its corpus, layers through import/save/load (the slowest
  # integration tests, image_cli_test and registry_integration_test, run unsanitized only, to
  # keep CI well under its time)
  parse_cli_test corpus_test layer_cli_test
  # the fuzz corpora
  fuzz
)
scripts/install-deps.sh --with-sanitizers
CC=clang CXX=clang++ cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSLIPWAY_SANITIZE=address,undefined,fuzzer-no-link -DSLIPWAY_FUZZ=ON >/dev/null
build_targets=(fuzz_targets)
for name in "${sanitized_tests[@]}"; do [ "$name" = fuzz ] || build_targets+=("$name"); done
cmake --build build-sanitize -j "$(nproc)" --target "${build_targets[@]}"
label_regex="^($(IFS='|'; echo "${sanitized_tests[*]}"))\$"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0" label_regex
unshare --net sh -c 'ip link set lo up &&
  exec ctest --test-dir build-sanitize --output-on-failure -j "$(nproc)" -L "$label_regex"'
