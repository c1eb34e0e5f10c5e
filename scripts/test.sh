#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit and integration) through ctest, then
# the sanitizer step (scripts/sanitize-test.sh: unit tests, chosen integration tests and every
# fuzz corpus under ASan, LSan and UBSan). Tests need root (namespaces, overlayfs, mknod) and
# ../shared beside the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
# In a network namespace of its own with only loopback up: `run` puts containers on a bridge
# with forwarding and NAT rules, and the suite must never touch this machine's interfaces. Tests
# that need a second machine make further namespaces of their own (ip netns add).
unshare --net sh -c 'ip link set lo up && exec ctest --test-dir build --output-on-failure -j "$(nproc)"'
scripts/sanitize-test.sh
