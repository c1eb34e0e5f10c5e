#!/bin/sh
echo "app from onbuild copy"
