#!/usr/bin/env bash
# Cost breakdown of one tiny proxied request through shardgate (issue 17): the gateway pinned
# to CPU 0 with one shard, `loadtest origin` and `loadtest run` on CPU 1. For each load (closed
# loop at saturation, then open loop at a fixed rate) three passes of the same length, so no
# pass pays for another's instruments:
#   1. clean: CPU per request, user and kernel, from /proc/<pid>/stat (every thread);
#   2. counted: io_uring submissions, completions, io_uring_enter calls, poll armings and task
#      work per request (tracepoints, `perf stat`);
#   3. sampled: `perf record -e cpu-clock -g`, grouped by breakdown.py into where the time
#      goes (TCP send, TCP receive, loopback softirq, poll arming, task work, wake-ups, parse,
#      route, stages, head writing, runtime, …).
# Usage: loadtest/scripts/profile.sh [seconds per pass, default 10] [fixed rate, default 10000]
# Output: target/profile/breakdown.md (and the raw perf data beside it). Needs perf and root
# (or perf_event_paranoid ≤ -1) for the tracepoints; without them it says so and stops.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
RATE=${2:-10000}
OUT=target/profile
mkdir -p "$OUT"
command -v perf >/dev/null || { echo "profile.sh: needs perf (Debian: linux-perf)"; exit 2; }
perf stat -e io_uring:io_uring_submit_req -- true >/dev/null 2>&1 \
  || { echo "profile.sh: perf cannot read io_uring tracepoints here (root or perf_event_paranoid)"; exit 2; }
cargo build --release -q -p shardgate -p loadtest
BIN=target/release
TICK=$(getconf CLK_TCK)

source loadtest/scripts/common.sh
ORIGIN_PORT=$(free_port)
GW_PORT=$(free_port)
proxy_toml "$OUT/shardgate.toml" "$GW_PORT" "$ORIGIN_PORT"

taskset -c 1 "$BIN/loadtest" origin --listen "127.0.0.1:$ORIGIN_PORT" --size 100 >/dev/null 2>&1 &
ORIGIN=$!
"$BIN/shardgate" --config "$OUT/shardgate.toml" 2>"$OUT/shardgate.log" &
GW=$!
trap 'kill $GW $ORIGIN 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q "listening on" "$OUT/shardgate.log" 2>/dev/null && break
  sleep 0.05
done

# user and system ticks of every thread of the gateway
ticks() { awk '{print $14, $15}' "/proc/$GW/stat"; }

# one pass: load "$@" for SECS after a second of warm-up; $PASS_HOOK runs during the window
pass() {
  local name=$1; shift
  taskset -c 1 "$BIN/loadtest" run -d "$SECS" --warmup 1 --json "$OUT/$name.json" "$@" \
    "http://127.0.0.1:$GW_PORT/" >"$OUT/$name.load.txt" 2>&1 &
  local load=$!
  sleep 1
  read -r u0 s0 < <(ticks)
  if [ -n "${PASS_HOOK:-}" ]; then $PASS_HOOK "$name"; else sleep "$SECS"; fi
  read -r u1 s1 < <(ticks)
  wait $load
  echo "$((u1 - u0)) $((s1 - s0))" >"$OUT/$name.ticks"
}

counted() {
  perf stat -x, -o "$OUT/$1.counts" -p "$GW" \
    -e io_uring:io_uring_submit_req,io_uring:io_uring_complete,syscalls:sys_enter_io_uring_enter,io_uring:io_uring_poll_arm,io_uring:io_uring_task_add \
    -- sleep "$SECS"
}

sampled() {
  perf record -q -e cpu-clock -F 1999 -g -p "$GW" -o "$OUT/$1.perf.data" -- sleep "$SECS" \
    >/dev/null 2>&1
}

for load in saturation fixed; do
  if [ $load = saturation ]; then args=(-c 64); else args=(-c 64 -r "$RATE"); fi
  PASS_HOOK="" pass "$load-clean" "${args[@]}"
  PASS_HOOK=counted pass "$load-counted" "${args[@]}"
  PASS_HOOK=sampled pass "$load-sampled" "${args[@]}"
  perf script -i "$OUT/$load-sampled.perf.data" -F comm,tid,ip,sym,dso 2>/dev/null \
    >"$OUT/$load-sampled.script"
done

python3 loadtest/scripts/breakdown.py "$OUT" "$TICK" "$SECS" "$RATE" | tee "$OUT/breakdown.md"
