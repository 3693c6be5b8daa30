#!/usr/bin/env bash
# Runs ../shared/conformance (208 raw HTTP/1.1 vectors) against a real shardgate routing "/" to
# the suite's upstream on 127.0.0.1:9901: once on io_uring with pooled upstream connections,
# once on epoll without. Usage: bash .ci/conformance.sh [path/to/shardgate]
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
BIN=${1:-target/debug/shardgate}
SUITE="$SHARED/conformance/http/run_http_suite.py"
[ -f "$SUITE" ] || { echo "conformance suite not found at $SUITE"; exit 1; }
[ -n "${1:-}" ] || cargo build -p shardgate   # never run a stale binary
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
status=0
for run in "io_uring --upstream-keepalive" "epoll"; do
  driver=${run%% *}
  flags=${run#"$driver"}
  cat > "$work/conformance.toml" <<TOML
[server]
listen = ["127.0.0.1:$port"]
shards = 1
driver = "$driver"

[[upstream]]
name = "suite"
targets = ["127.0.0.1:9901"]

[[route]]
path = "/{*rest}"
upstream = "suite"
TOML
  "$BIN" --config "$work/conformance.toml" 2> "$work/shardgate.log" &
  pid=$!
  for _ in $(seq 1 100); do
    grep -q "listening on" "$work/shardgate.log" 2>/dev/null && break
    if grep -q "io_uring is not available" "$work/shardgate.log" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if grep -q "io_uring is not available" "$work/shardgate.log"; then
    echo "skipping the io_uring run: io_uring is not available on this machine"
    pid=""
    continue
  fi
  echo "-- conformance: driver $driver${flags:+ (}${flags# }${flags:+)}"
  if ! python3 "$SUITE" --proxy "127.0.0.1:$port" --upstream-port 9901 --quiet $flags; then
    status=1
    echo "shardgate log:"; tail -n 50 "$work/shardgate.log"
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
  pid=""
done

# the same vectors through a TLS listener: a plain-to-TLS relay in front (the suite speaks
# plain TCP), the example certificate on the listener
tls_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
relay_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cp conf/examples/example.pem conf/examples/example.key "$work/"
cat > "$work/conformance-tls.toml" <<TOML
[server]
shards = 1
driver = "auto"

[[listener]]
address = "127.0.0.1:$tls_port"
[listener.tls]
certificates = [{ cert = "example.pem", key = "example.key" }]

[[upstream]]
name = "suite"
targets = ["127.0.0.1:9901"]

[[route]]
path = "/{*rest}"
upstream = "suite"
TOML
"$BIN" --config "$work/conformance-tls.toml" 2> "$work/shardgate.log" &
pid=$!
python3 .ci/tls_relay.py --listen "127.0.0.1:$relay_port" --target "127.0.0.1:$tls_port" > "$work/relay.log" 2>&1 &
relay=$!
for _ in $(seq 1 100); do
  grep -q "listening on" "$work/shardgate.log" 2>/dev/null && grep -q "relay ready" "$work/relay.log" 2>/dev/null && break
  sleep 0.1
done
echo "-- conformance: through a TLS listener (plain-to-TLS relay in front)"
if ! python3 "$SUITE" --proxy "127.0.0.1:$relay_port" --upstream-port 9901 --quiet --upstream-keepalive; then
  status=1
  echo "shardgate log:"; tail -n 50 "$work/shardgate.log"
fi
kill "$relay" 2>/dev/null; wait "$relay" 2>/dev/null || true
kill "$pid"; wait "$pid" 2>/dev/null || true
pid=""
exit $status
