#!/usr/bin/env bash
# What a rapid-reset loop costs the gateway against real requests (issue 15): one shard pinned
# to CPU 0 with an h2c listener in front of one `loadtest origin` (CPU 1). Each round runs
#   reset: rapid_reset.py, 100,000 streams opened and reset at once (reconnecting whenever the
#          gateway ends a connection), and
#   real:  h2load, 100,000 real GET / over 16 connections × 8 streams,
# and reads the gateway's CPU time (user+sys, /proc/PID/stat) around each. Rounds alternate;
# the figure is the median per-round ratio reset/real.
# Usage: loadtest/scripts/rapid_reset.sh [streams, default 100000] [rounds, default 3]
# Needs h2load (Debian package nghttp2-client). Output: a table on stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-100000}
ROUNDS=${2:-3}
OUT=target/rapid_reset
mkdir -p "$OUT"
command -v h2load >/dev/null || { echo "needs h2load (apt-get install nghttp2-client)"; exit 1; }
cargo build --release -q -p shardgate -p loadtest
BIN=target/release
source loadtest/scripts/common.sh
ORIGIN_PORT=$(free_port)
SG_PORT=$(free_port)
cat >"$OUT/shardgate.toml" <<EOT
[server]
shards = 1
pin = [0]
[[listener]]
address = "127.0.0.1:$SG_PORT"
h2c = true
[[upstream]]
name = "origin"
targets = ["127.0.0.1:$ORIGIN_PORT"]
keepalive = 1024
[[route]]
path = "/{*rest}"
upstream = "origin"
EOT
taskset -c 1 "$BIN/loadtest" origin --listen "127.0.0.1:$ORIGIN_PORT" >"$OUT/origin.log" 2>&1 &
ORIGIN=$!
"$BIN/shardgate" --config "$OUT/shardgate.toml" >"$OUT/shardgate.log" 2>&1 &
SG=$!
trap 'kill $ORIGIN $SG 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  grep -q "listening on" "$OUT/shardgate.log" && break
  sleep 0.1
done
ticks() { awk '{print $14 + $15}' "/proc/$SG/stat"; }
HZ=$(getconf CLK_TCK)
printf "%-6s %14s %14s %8s   %s\n" round "reset CPU ms" "real CPU ms" ratio "attack"
RATIOS=()
for r in $(seq "$ROUNDS"); do
  a=$(ticks)
  attack=$(taskset -c 1 python3 loadtest/scripts/rapid_reset.py "127.0.0.1:$SG_PORT" "$N")
  b=$(ticks)
  taskset -c 1 h2load -n "$N" -c 16 -m 8 "http://127.0.0.1:$SG_PORT/" >"$OUT/h2load.txt" 2>&1
  grep -q "$N succeeded" "$OUT/h2load.txt" || { cat "$OUT/h2load.txt"; exit 1; }
  c=$(ticks)
  reset_ms=$(( (b - a) * 1000 / HZ ))
  real_ms=$(( (c - b) * 1000 / HZ ))
  ratio=$(python3 -c "print(f'{$reset_ms / max($real_ms, 1):.3f}')")
  RATIOS+=("$ratio")
  printf "%-6s %14s %14s %8s   %s\n" "$r" "$reset_ms" "$real_ms" "$ratio" "$attack"
done
MEDIAN=$(printf "%s\n" "${RATIOS[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "median reset/real CPU ratio over $ROUNDS rounds: $MEDIAN ($N streams each)"
