#!/bin/sh
set -e
for f in /docker-entrypoint.d/*.sh; do
  . "$f"
done
echo "$GREETING; args: $*"
