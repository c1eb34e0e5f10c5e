#!/bin/sh
mariadb-admin ping >/dev/null
