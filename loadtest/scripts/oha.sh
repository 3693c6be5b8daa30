#!/bin/sh
# Ready oha commands (https://github.com/hatoo/oha; `cargo install oha`). oha's -q sets a
# constant rate, and --latency-correction measures from each request's scheduled time.
# Usage: sh loadtest/scripts/oha.sh [URL]   (default http://127.0.0.1:8080/)
set -eu
URL=${1:-http://127.0.0.1:8080/}
TOKEN=${TOKEN:-example-token}

echo "# closed loop, 64 connections, 10 s"
taskset -c 1 oha --no-tui -c 64 -z 10s "$URL"

echo "# open loop at 20,000 req/s, latency from the scheduled time"
taskset -c 1 oha --no-tui -c 64 -z 10s -q 20000 --latency-correction "$URL"

echo "# with a bearer token"
taskset -c 1 oha --no-tui -c 64 -z 10s -H "Authorization: Bearer $TOKEN" "$URL"

echo "# a new connection per request"
taskset -c 1 oha --no-tui -c 32 -z 10s --disable-keepalive "$URL"
