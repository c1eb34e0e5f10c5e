#!/usr/bin/env bash
# Installs the Debian packages slipway needs to build, test and benchmark, if any are missing.
# apt-get update runs only when something has to be installed, so a warm machine pays nothing.
set -euo pipefail
packages=(
  # toolchain
  g++ cmake ninja-build pkg-config
  # libraries (DESIGN.md "Dependencies")
  antlr4 libantlr4-runtime-dev libcurl4-openssl-dev libssl-dev nlohmann-json3-dev
  libarchive-dev libxxhash-dev libgtest-dev libisal-dev libzstd-dev libcli11-dev
  # the static archives slipway links libarchive with (CMakeLists.txt, SLIPWAY_STATIC_DEPS)
  libacl1-dev libbz2-dev liblz4-dev liblzma-dev zlib1g-dev
  # networking (network/): netlink through libnl-route-3, packet filtering through libnftables;
  # the tests make their own namespaces and veths with iproute2 and read rules with nft
  libnl-3-dev libnl-route-3-dev libnftables-dev iproute2 nftables
  # base images for tests and the demo; command-line tools the tests drive (compressors to
  # check blobs and make archives, openssl for test CAs and keys, curl for raw registry calls)
  busybox-static tar gzip zstd xz-utils bzip2 openssl curl
  # interop peers the tests drive: skopeo and umoci read the store's OCI layout and archives;
  # the real registry (distribution 2.8) for the registry tests, htpasswd (bcrypt) for its auth
  skopeo umoci docker-registry apache2-utils
)
if [ "${1:-}" = "--with-peers" ]; then
  # Peers for the side-by-side benchmarks and interop tests, and what the bench scripts call
  # (igzip for layer-bench, python3 for registry-bench's helpers, podman for network-bench).
  packages+=(buildah umoci runc mmdebstrap time isal python3 podman)
fi
if [ "${1:-}" = "--with-sanitizers" ]; then
  # scripts/sanitize-test.sh and scripts/fuzz.sh: clang with its sanitizer and libFuzzer
  # runtimes, llvm-symbolizer for readable reports. Not part of the demo's first minute.
  packages+=(clang libclang-rt-14-dev llvm-14)
fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
