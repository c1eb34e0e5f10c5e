#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit and integration) through ctest.
# Tests need root (namespaces, overlayfs, mknod) and ../shared beside the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"

# Sanitizer step (README "Tests"): a clang build with AddressSanitizer and UndefinedBehavior-
# Sanitizer in build-sanitize/ (with the coverage hooks the fuzz targets need, so that
# scripts/fuzz.sh reuses it), running the unit tests, the integration tests below (the slipway
# binary they drive is the sanitized one) and one replay of every fuzz target's corpus. Any
# sanitizer report aborts the process, which fails its test.
sanitized_tests=(
  # unit tests: every one
  grammar_test store_test layer_test runtime_test shell_words_test build_context_test
  file_copy_test store_gc_test registry_unit_test layer_interop_test pull_progress_test
  container_state_test
  # integration: the parser CLI and its corpus, images and archives, the registry
  parse_cli_test corpus_test image_cli_test layer_cli_test registry_integration_test
  # the fuzz corpora
  fuzz
)
CC=clang CXX=clang++ cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSLIPWAY_SANITIZE=address,undefined,fuzzer-no-link -DSLIPWAY_FUZZ=ON >/dev/null
build_targets=(fuzz_targets)
for name in "${sanitized_tests[@]}"; do [ "$name" = fuzz ] || build_targets+=("$name"); done
cmake --build build-sanitize -j "$(nproc)" --target "${build_targets[@]}"
label_regex="^($(IFS='|'; echo "${sanitized_tests[*]}"))\$"
LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0" \
  ctest --test-dir build-sanitize --output-on-failure -j "$(nproc)" -L "$label_regex"
