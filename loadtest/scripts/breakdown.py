#!/usr/bin/env python3
"""Turns profile.sh's raw figures into the per-request cost breakdown (markdown on stdout).

Arguments: the output directory, clock ticks per second, seconds per pass, the fixed rate.
Each cpu-clock sample is put in the group of the frame nearest its leaf that names one (a
memcpy under tcp_recvmsg is TCP receive; a wake-up inside the loopback softirq is a wake-up),
so the groups add up to all the samples; a group's µs per request is its share of the
samples times the clean pass's CPU per request.
"""

import collections
import json
import sys

KERNEL = [
    ("wake-ups", ["try_to_wake_up", "__wake_up", "io_poll_wake", "wake_up_process",
                  "sock_def_readable", "ep_poll_callback"]),
    ("loopback softirq (the peer's receive, run by each send)",
     ["net_rx_action", "process_backlog", "__netif_receive_skb", "tcp_v4_rcv", "ip_rcv",
      "ip_local_deliver"]),
    ("TCP send", ["tcp_sendmsg", "tcp_write_xmit", "__tcp_transmit_skb", "ip_queue_xmit",
                  "ip_finish_output", "__dev_queue_xmit", "loopback_xmit"]),
    ("TCP receive", ["tcp_recvmsg", "tcp_rcv_established", "skb_copy_datagram",
                     "tcp_cleanup_rbuf", "tcp_rcv_space_adjust"]),
    ("io_uring poll arming", ["io_arm_poll_handler", "__io_arm_poll_handler", "io_poll_add",
                              "io_poll_check_events", "__io_poll_execute"]),
    ("io_uring task work", ["tctx_task_work", "io_handle_tw_list", "task_work_run",
                            "io_req_task_complete", "io_run_local_work", "io_req_task_submit"]),
    ("io_uring submit and complete", ["io_submit_sqes", "io_issue_sqe", "io_cqring_wait",
                                      "__io_submit_flush_completions", "io_get_cqe",
                                      "__do_sys_io_uring_enter"]),
    ("scheduler", ["schedule", "__schedule", "finish_task_switch", "pick_next_task"]),
    ("syscall entry and exit", ["entry_SYSCALL", "syscall_exit_to_user_mode", "do_syscall_64"]),
]

USER = [
    ("parse (proto)", ["proto::parse", "proto::request", "proto::response", "proto::head",
                       "proto::chunk", "proto::chars", "httparse"]),
    ("route (policy::router)", ["policy::router"]),
    ("stages (policy::pipeline)", ["policy::pipeline", "policy::stages", "policy::stage"]),
    ("head writing", ["proto::write", "shardgate::answer", "shardgate::headers",
                      "shardgate::forward::head"]),
    ("allocation", ["malloc", "free", "realloc", "__rust_alloc", "__rust_dealloc",
                    "_int_malloc", "_int_free", "cfree"]),
    ("memcpy and memmove", ["memcpy", "memmove", "memset"]),
    ("runtime (monoio)", ["monoio::"]),
]


def samples(path):
    """Yields (is_kernel, frames leaf first as symbol names)."""
    frames = []
    kernel = None
    with open(path, errors="replace") as f:
        for line in f:
            if not line.strip():
                if frames:
                    yield kernel, frames
                frames, kernel = [], None
                continue
            if not line.startswith((" ", "\t")):
                continue  # the sample's header: comm and tid
            parts = line.strip().split(" ", 1)
            rest = parts[1] if len(parts) > 1 else ""
            sym, _, dso = rest.rpartition(" (")
            if kernel is None:
                kernel = "kernel" in dso
            frames.append(sym or rest)
    if frames:
        yield kernel, frames


def group(frames, table):
    for sym in frames:
        for name, keys in table:
            if any(k in sym for k in keys):
                return name
    return None


def counts(path):
    out = {}
    with open(path) as f:
        for line in f:
            fields = line.strip().split(",")
            if len(fields) >= 3 and fields[0].replace(".", "").isdigit():
                out[fields[2]] = float(fields[0])
    return out


def one(out, load, tick, secs):
    clean = json.load(open(f"{out}/{load}-clean.json"))
    counted = json.load(open(f"{out}/{load}-counted.json"))
    sampled = json.load(open(f"{out}/{load}-sampled.json"))
    user_t, sys_t = map(int, open(f"{out}/{load}-clean.ticks").read().split())
    reqs = clean["rps"] * clean["window_s"]
    user_us = user_t / tick / reqs * 1e6
    sys_us = sys_t / tick / reqs * 1e6
    total = user_us + sys_us
    print(f"### {load}: {clean['rps']:.0f} req/s (clean pass; {counted['rps']:.0f} counted, "
          f"{sampled['rps']:.0f} sampled)\n")
    print(f"CPU per request (clean pass, every gateway thread): **{total:.2f} µs** = "
          f"user {user_us:.2f} + kernel {sys_us:.2f} ({sys_us / total:.0%} kernel)\n")
    c = counts(f"{out}/{load}-counted.counts")
    treqs = counted["rps"] * secs
    print("| per request (counted pass) | count |\n|---|---|")
    for event, label in [("io_uring:io_uring_submit_req", "io_uring submissions"),
                         ("io_uring:io_uring_complete", "io_uring completions"),
                         ("syscalls:sys_enter_io_uring_enter", "io_uring_enter calls"),
                         ("io_uring:io_uring_poll_arm", "poll armings"),
                         ("io_uring:io_uring_task_add", "task work added")]:
        if event in c:
            print(f"| {label} | {c[event] / treqs:.2f} |")
    groups = collections.Counter()
    rest = {True: collections.Counter(), False: collections.Counter()}
    n = 0
    for kernel, frames in samples(f"{out}/{load}-sampled.script"):
        n += 1
        name = group(frames, KERNEL if kernel else USER)
        if name is None:
            name = "kernel, other" if kernel else "user, other"
            rest[bool(kernel)][frames[0]] += 1
        groups[("kernel" if kernel else "user", name)] += 1
    if n == 0:
        print("\n(no samples)\n")
        return
    print(f"\n| where the time goes ({n} samples) | share | µs/req |\n|---|---|---|")
    for (side, name), k in sorted(groups.items(), key=lambda kv: (kv[0][0], -kv[1])):
        print(f"| {side}: {name} | {k / n:.1%} | {k / n * total:.2f} |")
    for kernel, label in [(True, "kernel, other"), (False, "user, other")]:
        top = ", ".join(f"`{s}` {k / n:.1%}" for s, k in rest[kernel].most_common(8))
        if top:
            print(f"\nTop symbols in {label}: {top}")
    print()


def main():
    out, tick, secs, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    print(f"## Cost breakdown (`loadtest/scripts/profile.sh {int(secs)} {rate}`)\n")
    print("Gateway (1 shard, io_uring) on CPU 0; origin and generator on CPU 1; 100-byte "
          "responses, 64 keep-alive connections.\n")
    for load in ["saturation", "fixed"]:
        one(out, load, tick, secs)


if __name__ == "__main__":
    main()
