#!/usr/bin/env bash
# Memory per client connection, shardgate vs nginx in the same run (issue 17): each system
# proxies to one `loadtest origin`; N clients connect, and then either
#   idle:   each sends one request, reads the answer and stays open (keep-alive, idle), or
#   slow:   each sends the first half of a request head and stays open (in flight),
# and the system's RSS (all its processes) is read before and 2 s after, once every client
# is connected. Rounds alternate the systems; the figure is the median of per-round KiB per
# connection. Usage: loadtest/scripts/idle_memory.sh [clients, default 10000] [rounds, default 3]
# Output: a table on stdout and target/idle_memory/result.md. Needs nginx (Debian:
# nginx-light) for the reference; without it shardgate alone is measured.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-10000}
ROUNDS=${2:-3}
OUT=target/idle_memory
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p shardgate -p loadtest
BIN=target/release

source loadtest/scripts/common.sh
ORIGIN_PORT=$(free_port)
SG_PORT=$(free_port)
NG_PORT=$(free_port)
proxy_toml "$OUT/shardgate.toml" "$SG_PORT" "$ORIGIN_PORT" 'max_connections = 30000
keepalive_timeout = "120s"
client_head_timeout = "120s"'
mkdir -p "$OUT/nginx"
cat >"$OUT/nginx.conf" <<EOF
worker_processes 1;
worker_cpu_affinity 1;
worker_rlimit_nofile 20000;
daemon off;
pid $PWD/$OUT/nginx/nginx.pid;
error_log $PWD/$OUT/nginx/error.log warn;
events { worker_connections 30000; }
http {
  access_log off;
  client_body_temp_path $PWD/$OUT/nginx/body;
  proxy_temp_path $PWD/$OUT/nginx/proxy;
  keepalive_timeout 120s;
  client_header_timeout 120s;
  keepalive_requests 1000000;
  upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 1024; }
  server {
    listen 127.0.0.1:$NG_PORT reuseport;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF

taskset -c 1 "$BIN/loadtest" origin --listen "127.0.0.1:$ORIGIN_PORT" >"$OUT/origin.log" 2>&1 &
ORIGIN=$!
trap 'kill $ORIGIN 2>/dev/null || true' EXIT

SYSTEMS="shardgate"
command -v nginx >/dev/null && SYSTEMS="shardgate nginx" || echo "nginx not found: shardgate alone"

python3 - "$N" "$ROUNDS" "$SYSTEMS" "$BIN" "$OUT" "$SG_PORT" "$NG_PORT" <<'PY'
import os, resource, socket, statistics, subprocess, sys, time
n, rounds, systems, bin_, out, sg_port, ng_port = sys.argv[1:]
n, rounds, systems = int(n), int(rounds), systems.split()
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
if hard < n + 100:
    raise SystemExit(f"open-file limit {hard} is below {n} clients")

def start(system):
    if system == "shardgate":
        cmd = ["taskset", "-c", "0", f"{bin_}/shardgate", "--config", f"{out}/shardgate.toml"]
        port = int(sg_port)
    else:
        cmd = ["taskset", "-c", "0", "nginx", "-c", os.path.abspath(f"{out}/nginx.conf")]
        port = int(ng_port)
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(f"{out}/{system}.log", "w"))
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{system} did not start (see {out}/{system}.log)")

def rss_kib(root):
    # the process and its children (nginx: master and worker)
    pids = [root]
    try:
        pids += [int(c) for c in open(f"/proc/{root}/task/{root}/children").read().split()]
    except OSError:
        pass
    total = 0
    for pid in pids:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total

def gateway_pid(p):
    # taskset execs the program, so the child is the system itself
    return p.pid

REQ = b"GET /idle HTTP/1.1\r\nHost: bench\r\n\r\n"
HALF = b"GET /slow HTTP/1.1\r\nHost: bench\r\nUser-Agent: slow-"

def open_clients(port, mode):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(REQ if mode == "idle" else HALF)
        socks.append(s)
    if mode == "idle":
        for s in socks:
            got = b""
            while b"\r\n\r\n" not in got:
                chunk = s.recv(4096)
                if not chunk:
                    raise SystemExit("a connection closed before its answer")
                got += chunk
    return socks

results = {(sys_, m): [] for sys_ in systems for m in ("idle", "slow")}
for r in range(rounds):
    for mode in ("idle", "slow"):
        for system in (systems if r % 2 == 0 else systems[::-1]):
            p, port = start(system)
            # one warm-up request, so pools and lazy state exist before the baseline
            w = socket.create_connection(("127.0.0.1", port))
            w.sendall(b"GET /warm HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            while w.recv(4096):
                pass
            w.close()
            time.sleep(0.5)
            before = rss_kib(gateway_pid(p))
            socks = open_clients(port, mode)
            time.sleep(2)
            after = rss_kib(gateway_pid(p))
            per = (after - before) / n
            results[(system, mode)].append(per)
            print(f"round {r + 1} {mode:4} {system:9} {before:7} -> {after:7} KiB: {per:.2f} KiB/conn", flush=True)
            for s in socks:
                s.close()
            p.terminate()
            p.wait()

lines = [f"clients: {n}, rounds: {rounds} (median of per-round KiB per connection)", "",
         "| connections | " + " | ".join(systems) + (" | shardgate / nginx |" if "nginx" in systems else " |"),
         "|---|" + "---|" * (len(systems) + (1 if "nginx" in systems else 0))]
for mode, label in (("idle", "idle keep-alive"), ("slow", "in flight (half a head)")):
    meds = [statistics.median(results[(s, mode)]) for s in systems]
    row = f"| {label} | " + " | ".join(f"{m:.2f}" for m in meds)
    if "nginx" in systems:
        row += f" | {meds[0] / meds[1]:.2f}×" if meds[1] > 0 else " | -"
    lines.append(row + " |")
text = "\n".join(lines)
print(text)
open(f"{out}/result.md", "w").write(text + "\n")
PY
