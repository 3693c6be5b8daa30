#!/bin/sh
# Ready wrk commands for shardgate, for people who prefer wrk (or wrk2) to `loadtest run`.
# Pin the load away from the gateway: the gateway on CPU 0 (`pin = [0]` in its config), wrk and
# the origin on CPU 1. Usage: sh loadtest/scripts/wrk.sh [URL]   (default http://127.0.0.1:8080/)
set -eu
URL=${1:-http://127.0.0.1:8080/}
HERE=$(dirname "$0")

echo "# closed loop, 64 keep-alive connections, 10 s, latency distribution"
taskset -c 1 wrk -t1 -c64 -d10s --latency "$URL"

echo "# with an Authorization header (TOKEN=... in the environment; see auth.lua)"
TOKEN=${TOKEN:-example-token} taskset -c 1 wrk -t1 -c64 -d10s --latency -s "$HERE/auth.lua" "$URL"

echo "# a new connection per request"
taskset -c 1 wrk -t1 -c32 -d10s --latency -H "Connection: close" "$URL"

# Open loop (constant rate, coordinated omission corrected) needs wrk2, whose binary is also
# called wrk; with it:  wrk -t1 -c64 -d30s -R 20000 --latency "$URL"
# `loadtest run --rate 20000 -c 64 -d 30 URL` does the same with no extra install.
