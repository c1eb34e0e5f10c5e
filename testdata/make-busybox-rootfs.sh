#!/usr/bin/env bash
# Makes a minimal root filesystem tarball from Debian's busybox-static: /bin/busybox plus a
# symlink per applet, the usual top-level directories, and root's passwd/group entries.
# There is no internet here, so this is how the tests and the demo get a base image.
# Usage: make-busybox-rootfs.sh OUT.tar
set -euo pipefail
out=${1:?usage: make-busybox-rootfs.sh OUT.tar}
busybox=$(command -v busybox || true)
[ -x /bin/busybox ] && busybox=/bin/busybox
if [ -z "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
  echo "make-busybox-rootfs: a static busybox is needed (apt-get install busybox-static)" >&2
  exit 1
fi
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
chmod 755 "$staging"
cd "$staging"
mkdir -p bin sbin usr/bin usr/sbin etc root tmp proc sys dev var/log home
chmod 1777 tmp
chmod 700 root
cp "$busybox" bin/busybox
for applet in $("$busybox" --list-full); do
  [ -e "$applet" ] || ln -s /bin/busybox "$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > etc/passwd
printf 'root:x:0:\nnogroup:x:65534:\n' > etc/group
printf '127.0.0.1\tlocalhost\n' > etc/hosts
: > etc/profile
# Fixed mtimes and numeric owners: the same busybox gives the same tarball, and so the same image.
find . -exec touch -h -d '2020-01-01T00:00:00Z' {} +
tar --numeric-owner --owner=0 --group=0 --sort=name -cf "$out" .
