#!/bin/sh
echo "ipv6 listen: left as configured"
