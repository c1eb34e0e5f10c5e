#!/usr/bin/env bash
# The main job on local defaults: install what is missing, build slipway (only the binary: the
# tests are built by scripts/test.sh), make a busybox base image, build the example image from
# testdata/classic, and run it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh slipway
slipway=build/cli/slipway
rootfs=$(mktemp -d)/busybox-rootfs.tar
trap 'rm -rf "$(dirname "$rootfs")"' EXIT
testdata/make-busybox-rootfs.sh "$rootfs"
echo "+ slipway import $rootfs busybox"
"$slipway" import "$rootfs" busybox
echo "+ slipway build -t classic testdata/classic"
"$slipway" build -t classic testdata/classic
echo "+ slipway images"
"$slipway" images
# No bridge for the demo: it runs on the machine's own network namespace, which it leaves alone.
echo "+ slipway run --rm --network none classic"
"$slipway" run --rm --network none classic
