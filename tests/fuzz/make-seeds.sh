#!/usr/bin/env bash
# Makes the binary seeds of tests/fuzz/corpus (tars, compressed blobs, image archives) with the
# system's tar and compressors. Run once; its output is committed, so running it again only
# matters when a seed is added here. Text seeds are written by hand in corpus/ directly.
set -euo pipefail
cd "$(dirname "$0")/corpus"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tarc() { tar --blocking-factor=1 --format=pax --numeric-owner --owner=0 --group=0 --mtime=@0 "$@"; }

# ---- layer_apply: layer tars of every entry kind the store handles, and hostile ones.
mkdir -p layer_apply "$work/tree/etc/sub" "$work/tree/dev"
echo hello >"$work/tree/etc/hello"
ln -s hello "$work/tree/etc/link"
ln -s /etc/passwd "$work/tree/etc/abs-link"
ln "$work/tree/etc/hello" "$work/tree/etc/hard"
touch "$work/tree/etc/.wh.gone" "$work/tree/etc/sub/.wh..wh..opq"
mkfifo "$work/tree/etc/fifo"
mknod "$work/tree/dev/null" c 1 3 2>/dev/null || true
mknod "$work/tree/dev/sda" b 8 0 2>/dev/null || true
setfattr -n user.note -v seed "$work/tree/etc/hello" 2>/dev/null || true
long=$(printf 'd%.0s' $(seq 1 120))
mkdir -p "$work/tree/$long/$long"
echo deep >"$work/tree/$long/$long/file"
tarc -C "$work/tree" --xattrs -cf layer_apply/kinds.tar .
tarc -C "$work/tree" --format=gnu -cf layer_apply/gnu.tar etc
tarc -C "$work/tree" --format=ustar -cf layer_apply/ustar.tar etc/hello etc/link
truncate -s 1M "$work/tree/sparse" && echo end >>"$work/tree/sparse"
tarc -C "$work/tree" -S -cf layer_apply/sparse.tar sparse
mkdir -p "$work/evil"
echo x >"$work/evil/x"
tarc -C "$work/evil" --transform 's,^x$,../escape,' -cf layer_apply/dotdot.tar x
tarc -C "$work/evil" -P --transform 's,^x$,/tmp/escape,' -cf layer_apply/absolute.tar x
ln -s .. "$work/evil/up"
tarc -C "$work/evil" -cf layer_apply/through-symlink.tar up
tarc -C "$work/evil" --transform 's,^x$,up/escape,' -rf layer_apply/through-symlink.tar x
ln -s /etc "$work/evil/etc-link"
tarc -C "$work/evil" -cf layer_apply/abs-symlink.tar etc-link
tarc -C "$work/evil" --transform 's,^x$,etc-link/escape,' -rf layer_apply/abs-symlink.tar x
ln "$work/evil/x" "$work/evil/x2"
tarc -C "$work/evil" --transform 's,^x$,../x,' -cf layer_apply/hardlink-out.tar x x2
head -c 1024 /dev/zero >layer_apply/empty-end.tar

# ---- layer_decode: one small tar in every compression, and a truncated one of each.
mkdir -p layer_decode
tarc -C "$work/tree" -cf "$work/small.tar" etc/hello etc/link
cp "$work/small.tar" layer_decode/plain.tar
gzip -9nc "$work/small.tar" >layer_decode/small.tar.gz
zstd -q -19 -c "$work/small.tar" >layer_decode/small.tar.zst
bzip2 -9c "$work/small.tar" >layer_decode/small.tar.bz2
xz -9c "$work/small.tar" >layer_decode/small.tar.xz
cat layer_decode/small.tar.gz layer_decode/small.tar.gz >layer_decode/two-members.tar.gz
for f in small.tar.gz small.tar.zst small.tar.bz2 small.tar.xz; do
  head -c $(($(stat -c %s "layer_decode/$f") / 2)) "layer_decode/$f" >"layer_decode/half-$f"
done

# ---- archive_load: a docker-archive and an OCI archive of a one-layer image (as slipway
# save writes them: the layer is the small tar above), plus gzip'd forms.
mkdir -p archive_load "$work/docker" "$work/oci/blobs/sha256"
diff_id=sha256:$(sha256sum "$work/small.tar" | cut -d' ' -f1)
config='{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["'$diff_id'"]}}'
config_hex=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
printf '%s' "$config" >"$work/docker/$config_hex.json"
mkdir "$work/docker/${diff_id#sha256:}"
cp "$work/small.tar" "$work/docker/${diff_id#sha256:}/layer.tar"
printf '[{"Config":"%s.json","RepoTags":["seed:latest"],"Layers":["%s/layer.tar"]}]' \
  "$config_hex" "${diff_id#sha256:}" >"$work/docker/manifest.json"
printf '{"seed":{"latest":"%s"}}' "${diff_id#sha256:}" >"$work/docker/repositories"
tarc -C "$work/docker" -cf archive_load/docker-archive.tar .
gzip -9nc archive_load/docker-archive.tar >archive_load/docker-archive.tar.gz
layer_gz="$work/small.tar.gz"
gzip -9nc "$work/small.tar" >"$layer_gz"
layer_hex=$(sha256sum "$layer_gz" | cut -d' ' -f1)
cp "$layer_gz" "$work/oci/blobs/sha256/$layer_hex"
printf '%s' "$config" >"$work/oci/blobs/sha256/$config_hex"
manifest='{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'$config_hex'","size":'${#config}'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:'$layer_hex'","size":'$(stat -c %s "$layer_gz")'}]}'
manifest_hex=$(printf '%s' "$manifest" | sha256sum | cut -d' ' -f1)
printf '%s' "$manifest" >"$work/oci/blobs/sha256/$manifest_hex"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"io.containerd.image.name":"docker.io/library/seed:latest","org.opencontainers.image.ref.name":"latest"}}]}' \
  "$manifest_hex" "${#manifest}" >"$work/oci/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
tarc -C "$work/oci" -cf archive_load/oci-archive.tar .
ln -s "blobs/sha256/$manifest_hex" "$work/oci/linked"
tarc -C "$work/oci" -cf archive_load/oci-archive-symlink.tar .
echo "seeds written"
