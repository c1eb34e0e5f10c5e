#!/usr/bin/env bash
# ci-cache-bench.sh: the CI job of issue 13, slipway against buildah, in one run.
#
# A CI runner starts with an empty store; a registry holds the previous run's build cache; one file
# of the context changed. The job is the build plus the push of the image and of the new cache:
#
#   slipway build --cache-from REG/cache-s:ci --cache-to type=registry,ref=REG/cache-s:ci,mode=max
#                 --push -t REG/app-s:ci CTX
#   buildah bud --layers --cache-from REG/cache-b --cache-to REG/cache-b -t REG/app-b:ci CTX
#     && buildah push REG/app-b:ci                                  (Debian buildah 1.28)
#
# The Dockerfile has 12 steps: FROM, WORKDIR, COPY of a few dependency files, two RUN steps doing
# real work on them (seq | sha256sum | gzip, 16 MiB through gzip), ENV, COPY of a 5 000-file
# source tree (the changed file is in it), three RUN steps over those files (hash them all, tar |
# gzip, list), LABEL, CMD. The "previous run" (untimed) builds the original context with each tool
# into the registry; then one source file changes, both stores are emptied, and the job is timed
# once per tool. Every timed command's exit status is checked, and so is the number of steps each
# tool took from the cache (both must hit the steps before the changed COPY).
#
# Also printed: slipway's hashing time of the 5 000-file context, cold (the job: an empty store,
# no stat cache) and warm (the same build again in that store), from SLIPWAY_HASH_STATS.
#
# Network: everything runs inside a network namespace the bench makes (ip netns add, then
# nsenter --net=/run/netns/NAME; loopback only): the docker-registry, slipway, and buildah, whose
# RUN steps use `--network host`, which is that namespace. It is deleted at the end.
# buildah needs a containers.conf here (../shared/DESIGN.md): CONTAINERS_CONF points at one in the
# temp dir (default_ulimits = [], runtime runc, cgroupfs); each buildah command runs in a private
# mount namespace in which /etc and /var/lib are read-only, as in build-bench.sh.
#
# Usage: bench/ci-cache-bench.sh   (as root)
# Environment: SLIPWAY (default build/cli/slipway), FILES (5000), KEEP_WORKDIR=1.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self="$here/$(basename "${BASH_SOURCE[0]}")"
repo=$(cd "$here/.." && pwd)
SLIPWAY=${SLIPWAY:-$repo/build/cli/slipway}
FILES=${FILES:-5000}
TARGET=0.3
REG=127.0.0.1:5000  # inside the bench's own network namespace

log() { printf '[ci-bench] %s\n' "$*" >&2; }
die() { printf 'ci-cache-bench: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
umount_below() {
  local m
  awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
}

# ---------------------------------------------------------------------------------------------
# buildah, confined: `ci-cache-bench.sh --buildah WORK ACTION` under unshare -m (already inside
# the network namespace). ACTION: job (build + push; prints the seconds) | cleanup.
buildah_action() {
  local work=$1 action=$2 b=$1/buildah
  mount --make-rprivate /
  mount --bind "$b/shadow/run" /run
  mount --bind "$b/shadow/vartmp" /var/tmp
  mount --bind "$b/shadow/varcache" /var/cache
  mount --bind -o ro /etc /etc
  mount --bind -o ro /var/lib /var/lib
  export CONTAINERS_CONF=$b/containers.conf CONTAINERS_STORAGE_CONF=$b/storage.conf TMPDIR=$b/tmp
  export CONTAINERS_REGISTRIES_CONF=$b/registries.conf
  local -a bh=(buildah --root "$b/root" --runroot "$b/runroot" --storage-driver overlay)
  local t0 t1
  case $action in
    job)
      t0=$(now)
      "${bh[@]}" bud --layers --network host --runtime runc --tls-verify=false \
        --cache-from "$REG/cache-b" --cache-to "$REG/cache-b" -t "$REG/app-b:ci" "$work/ctx" \
        > "$b/build.out" 2>&1 || { cat "$b/build.out" >&2; die "buildah bud failed"; }
      "${bh[@]}" push --tls-verify=false "$REG/app-b:ci" > "$b/push.out" 2>&1 ||
        { cat "$b/push.out" >&2; die "buildah push failed"; }
      t1=$(now)
      elapsed "$t0" "$t1"
      ;;
    cleanup)
      "${bh[@]}" rm --all > /dev/null 2>&1 || true
      "${bh[@]}" rmi --all --force > /dev/null 2>&1 || true
      ;;
  esac
  umount_below "$b/root"
  umount_below "$b/runroot"
}

if [ "${1:-}" = "--buildah" ]; then
  buildah_action "$2" "$3"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "run as root"
[ -x "$SLIPWAY" ] || die "no slipway binary at $SLIPWAY"
for tool in buildah docker-registry nsenter unshare ip curl; do
  command -v "$tool" > /dev/null || die "$tool is needed"
done

ns=slipway-cibench-$$
work=$(mktemp -d /tmp/slipway-cibench.XXXXXX)
registry_pid=
inns() { nsenter --net="/run/netns/$ns" "$@"; }
cleanup() {
  local rc=$?
  trap - EXIT
  set +e  # every step of the cleanup runs, whatever the one before returned
  if [ -d "$work/buildah/root" ]; then
    inns unshare -m --propagation private -- "$self" --buildah "$work" cleanup || true
  fi
  if [ -n "$registry_pid" ]; then
    kill "$registry_pid" 2> /dev/null
    wait "$registry_pid" 2> /dev/null
  fi
  umount_below "$work"
  ip netns del "$ns" 2> /dev/null || true
  if [ "${KEEP_WORKDIR:-0}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
chmod 755 "$work"

ip netns add "$ns"
inns ip link set lo up

# The registry, inside the namespace.
mkdir -p "$work/registry"
cat > "$work/registry/config.yml" << EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry/data
  delete:
    enabled: true
http:
  addr: $REG
EOF
# nsenter itself, not the inns function: a function in the background is a subshell, and $!
# would be that subshell's PID, so cleanup's kill would leave the registry running.
nsenter --net="/run/netns/$ns" docker-registry serve "$work/registry/config.yml" \
  > "$work/registry/log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do inns curl -fs "http://$REG/v2/" > /dev/null && break; sleep 0.1; done
inns curl -fs "http://$REG/v2/" > /dev/null || die "docker-registry did not start"

# The base image, pushed once.
"$repo/testdata/make-busybox-rootfs.sh" "$work/busybox-rootfs.tar"
inns "$SLIPWAY" --root "$work/setup" import "$work/busybox-rootfs.tar" "$REG/base:1" > /dev/null
inns "$SLIPWAY" --root "$work/setup" push "$REG/base:1" > /dev/null

# The context: a few dependency files, FILES source files in 50 directories, the Dockerfile.
mkdir -p "$work/ctx/deps"
for i in $(seq 1 8); do seq "$i" 1000 40000 > "$work/ctx/deps/lib$i.txt"; done
awk -v files="$FILES" -v root="$work/ctx/src" 'BEGIN {
  for (d = 0; d < 50; d++) system("mkdir -p " root "/d" sprintf("%02d", d));
  for (i = 0; i < files; i++) {
    f = sprintf("%s/d%02d/f%04d.txt", root, i % 50, i);
    for (l = 0; l < 20; l++) printf "file %d line %d: the quick brown fox jumps over the lazy dog\n", i, l > f;
    close(f);
  }
}'
cat > "$work/ctx/Dockerfile" << EOF
FROM $REG/base:1
WORKDIR /app
COPY deps/ /app/deps/
RUN seq 1 300000 | sha256sum > /app/seq.sum && seq 1 300000 | gzip -6 > /app/seq.gz
RUN cat /app/deps/* | sha256sum > /app/deps.sum && dd if=/dev/zero bs=1M count=16 2>/dev/null | gzip -6 > /app/zeros.gz
ENV APP_MODE=release
COPY src/ /app/src/
RUN find /app/src -type f | sort | xargs cat | sha256sum > /app/src.sum
RUN tar -C /app -cf - src | gzip -1 > /app/src.tar.gz
RUN ls -lR /app/src | wc -l > /app/src.count
LABEL bench=ci-cache
CMD ["cat", "/app/src.sum"]
EOF

# buildah's confinement: configs and scratch dirs in the temp dir.
b=$work/buildah
mkdir -p "$b/tmp" "$b/shadow/run" "$b/shadow/vartmp" "$b/shadow/varcache"
chmod 1777 "$b/shadow/vartmp"
cat > "$b/containers.conf" << EOF
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
image_copy_tmp_dir = "$b/tmp"
EOF
cat > "$b/storage.conf" << EOF
[storage]
driver = "overlay"
graphroot = "$b/root"
runroot = "$b/runroot"
EOF
cat > "$b/registries.conf" << EOF
[[registry]]
location = "$REG"
insecure = true
EOF

fresh_buildah() {
  if [ -d "$b/root" ]; then inns unshare -m --propagation private -- "$self" --buildah "$work" cleanup; fi
  umount_below "$b/root"
  rm -rf "$b/root" "$b/runroot"
  mkdir -p "$b/root" "$b/runroot"
}
buildah_job() { inns unshare -m --propagation private -- "$self" --buildah "$work" job; }
slipway_job() { # ROOT; prints the seconds
  local t0 t1
  t0=$(now)
  SLIPWAY_HASH_STATS=1 inns "$SLIPWAY" --root "$1" build -t "$REG/app-s:ci" \
    --cache-from "$REG/cache-s:ci" --cache-to "type=registry,ref=$REG/cache-s:ci,mode=max" \
    --push "$work/ctx" > "$work/slipway.out" 2>&1 ||
    { cat "$work/slipway.out" >&2; die "slipway build --push failed"; }
  t1=$(now)
  elapsed "$t0" "$t1"
}
hits() { grep -c 'Using cache' "$1" || true; }

log "slipway: $SLIPWAY"
log "buildah: $(buildah --version)"
log "load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"

# The previous CI run: each tool builds the original context into the registry (untimed).
log "previous run: slipway"
slipway_job "$work/prev-slipway" > /dev/null
log "previous run: buildah"
fresh_buildah
buildah_job > /dev/null

# One file changes; both stores are empty again.
echo "changed by this commit" >> "$work/ctx/src/d07/f0107.txt"
rm -rf "$work/prev-slipway"
fresh_buildah

log "the job: slipway"
sw_time=$(slipway_job "$work/slipway")
sw_hits=$(hits "$work/slipway.out")
cold_hash=$(grep '^context hashing' "$work/slipway.out" || echo "context hashing: n/a")
log "the job: buildah"
bh_time=$(buildah_job)
bh_hits=$(hits "$b/build.out")
# Both must have taken the five steps before the changed COPY from the cache.
[ "$sw_hits" -ge 5 ] || { cat "$work/slipway.out" >&2; die "slipway hit only $sw_hits steps"; }
[ "$bh_hits" -ge 4 ] || { cat "$b/build.out" >&2; die "buildah hit only $bh_hits steps"; }

# Warm hashing: the same build again in the job's store (stat cache present, all hits).
SLIPWAY_HASH_STATS=1 inns "$SLIPWAY" --root "$work/slipway" build -t warm "$work/ctx" \
  > "$work/warm.out" 2>&1 || { cat "$work/warm.out" >&2; die "slipway warm build failed"; }
warm_hash=$(grep '^context hashing' "$work/warm.out" || echo "context hashing: n/a")

ratio=$(awk -v a="$sw_time" -v b="$bh_time" 'BEGIN { printf "%.2f", a / b }')
printf '\nCI job (empty store, cache in the registry, one changed file of %d), one run each\n' "$FILES"
printf '  %-8s %8s s  (%s steps from the cache)\n' slipway "$sw_time" "$sw_hits" buildah "$bh_time" "$bh_hits"
printf '  ratio slipway/buildah: %s (target <= %s)\n' "$ratio" "$TARGET"
printf '  slipway %s [cold: empty store]\n' "${cold_hash#context hashing: }"
printf '  slipway %s [warm: stat cache]\n' "${warm_hash#context hashing: }"
printf '  load average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
