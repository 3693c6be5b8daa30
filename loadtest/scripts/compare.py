#!/usr/bin/env python3
"""Side-by-side proxy cost: shardgate (1 shard) vs nginx (1 worker) on the same upstream.

Pins the proxy under test to --proxy-cpu and wrk plus the built-in origin to --load-cpu, runs the
targets in interleaved rounds (A B A B ...), and reports per target and response size:
requests/s, p99 latency and proxy CPU microseconds per response (user+sys of every thread of
every proxy process, from /proc, over the wrk window, divided by the responses wrk counted),
as medians over the rounds with their min..max, and the ratio to nginx.

  cargo build --release -p shardgate -p loadtest
  python3 loadtest/scripts/compare.py --rounds 5 --duration 10

Needs wrk and nginx on PATH (skips nginx, saying so, when it is missing). Loopback only.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port: int, timeout: float = 10.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{pid}/task/{t}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
            except (FileNotFoundError, IndexError):
                pass
    return total


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def process_tree(root: int) -> list[int]:
    pids = [root]
    try:
        out = subprocess.run(["pgrep", "-P", str(root)], capture_output=True, text=True).stdout
        pids += [int(p) for p in out.split()]
    except FileNotFoundError:
        pass
    return pids


def parse_latency(v: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    if not m:
        return float("nan")
    n, unit = float(m.group(1)), m.group(2)
    return n / 1000 if unit == "us" else n if unit == "ms" else n * 1000


def run_wrk(port: int, args, path: str = "/") -> dict:
    cmd = ["taskset", "-c", str(args.load_cpu), "wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s",
           "--latency", f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = parse_latency(re.search(r"99%\s+(\S+)", out).group(1))
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    return dict(rps=rps, requests=total, p99_ms=p99, errors=errors)


class Target:
    def __init__(self, name: str, port: int, proc: subprocess.Popen):
        self.name, self.port, self.proc = name, port, proc

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid)

    def stop(self) -> None:
        try:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()


def start_shardgate(args, origin_port: int, tmp: str, name: str = "shardgate", binary: str | None = None) -> Target:
    port = free_port()
    conf = os.path.join(tmp, f"{name}.toml")
    with open(conf, "w") as f:
        f.write(f"""[server]
listen = ["127.0.0.1:{port}"]
shards = 1
pin = [{args.proxy_cpu}]
driver = "{args.driver}"

[[upstream]]
name = "origin"
targets = ["127.0.0.1:{origin_port}"]
keepalive = 256

[[route]]
path = "/{{*rest}}"
upstream = "origin"
""")
    log = open(os.path.join(tmp, f"{name}.log"), "w")
    p = subprocess.Popen([binary or args.shardgate, "--config", conf], stderr=log, stdout=subprocess.DEVNULL)
    wait_port(port)
    return Target(name, port, p)


def start_nginx(args, origin_port: int, tmp: str) -> Target | None:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not nginx:
        print("nginx not found: skipping it (apt-get install nginx-light)")
        return None
    port = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1;
worker_cpu_affinity {1 << args.proxy_cpu:b};
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 256; }}
  server {{
    listen 127.0.0.1:{port} reuseport;
    keepalive_requests 1000000;
    location / {{
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering on;
    }}
  }}
}}
""")
    p = subprocess.Popen(["taskset", "-c", str(args.proxy_cpu), nginx, "-c", conf, "-p", tmp],
                         stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    wait_port(port)
    return Target("nginx", port, p)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--sizes", default="100,16384", help="response body sizes (bytes)")
    ap.add_argument("--proxy-cpu", type=int, default=0)
    ap.add_argument("--load-cpu", type=int, default=1)
    ap.add_argument("--shardgate", default=os.path.join(ROOT, "target/release/shardgate"))
    ap.add_argument("--loadtest", default=os.path.join(ROOT, "target/release/loadtest"))
    ap.add_argument("--driver", default="auto", help="shardgate's driver: auto, io_uring or epoll")
    ap.add_argument("--no-nginx", action="store_true", help="measure shardgate alone")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=PATH",
                    help="also measure another shardgate binary in the same rounds (A/B of a change)")
    ap.add_argument("--json", help="write all rounds here")
    a = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk not found (apt-get install wrk)")
        return 2
    tmp = tempfile.mkdtemp(prefix="sg-compare-")
    procs = []
    results: dict = {}
    try:
        for size in [int(s) for s in a.sizes.split(",")]:
            oport = free_port()
            origin = subprocess.Popen(["taskset", "-c", str(a.load_cpu), a.loadtest, "origin", "--listen",
                                       f"127.0.0.1:{oport}", "--size", str(size)],
                                      stderr=subprocess.DEVNULL)
            procs.append(origin)
            wait_port(oport)
            targets = [start_shardgate(a, oport, tmp)]
            for v in a.variant:
                vname, vpath = v.split("=", 1)
                targets.append(start_shardgate(a, oport, tmp, vname, vpath))
            if not a.no_nginx:
                targets += [t for t in (start_nginx(a, oport, tmp),) if t]
            for t in targets:
                run_wrk(t.port, argparse.Namespace(**{**vars(a), "duration": 2}))  # warm-up
            for r in range(a.rounds):
                for t in targets:
                    pids = t.pids()
                    before = cpu_ticks(pids)
                    w = run_wrk(t.port, a)
                    used = cpu_ticks(pids) - before
                    w["cpu_us_per_req"] = used / CLK * 1e6 / max(w["requests"], 1)
                    w["rss_kib"] = rss_kib(pids)
                    results.setdefault(f"{size}", {}).setdefault(t.name, []).append(w)
                    print(f"size {size:>6} round {r + 1} {t.name:10s} {w['rps']:>10.0f} req/s  p99 {w['p99_ms']:7.2f} ms  "
                          f"cpu {w['cpu_us_per_req']:6.2f} us/req  rss {w['rss_kib'] / 1024:6.1f} MiB  errors {w['errors']}",
                          flush=True)
            for t in targets:
                t.stop()
            origin.terminate()
            origin.wait()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    print()
    print(f"medians of {a.rounds} interleaved rounds ({a.duration}s each, {a.connections} connections; "
          f"proxy on CPU {a.proxy_cpu}, wrk + origin on CPU {a.load_cpu})")
    print(f"{'size':>6} {'proxy':10s} {'req/s':>10s} {'p99 ms':>8s} {'CPU us/req (min..max)':>24s} {'RSS MiB':>8s} "
          f"{'CPU vs nginx, per round (min..max)':>36s}")
    for size, by in results.items():
        ng = by.get("nginx")
        for name, ws in by.items():
            cpu = [w["cpu_us_per_req"] for w in ws]
            med = statistics.median(cpu)
            if ng:
                # ratio within each round (same minute, same machine state), then its spread
                rr = [w["cpu_us_per_req"] / n["cpu_us_per_req"] for w, n in zip(ws, ng)]
                ratio = f"{statistics.median(rr):.2f}x ({min(rr):.2f}..{max(rr):.2f})"
            else:
                ratio = "-"
            print(f"{size:>6} {name:10s} {statistics.median([w['rps'] for w in ws]):>10.0f} "
                  f"{statistics.median([w['p99_ms'] for w in ws]):>8.2f} "
                  f"{med:>10.2f} ({min(cpu):.2f}..{max(cpu):.2f}) "
                  f"{statistics.median([w['rss_kib'] for w in ws]) / 1024:>8.1f} {ratio:>36s}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
