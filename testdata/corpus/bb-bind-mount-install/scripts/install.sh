#!/bin/sh
echo "install.sh from a bind mount" > /etc/installed-by
