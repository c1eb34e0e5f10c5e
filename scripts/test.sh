#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit and integration) through ctest.
# Tests need root (namespaces, overlayfs, mknod) and ../shared beside the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"
