#!/bin/sh
exec gosu postgres "$@"
