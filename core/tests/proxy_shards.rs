//! Shards: several threads really share the port, each is pinned when asked, and SIGTERM
//! drains in-flight requests before a clean exit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use std::io::Write;
use std::time::Duration;

use support::origin::Origin;
use support::{DRIVERS, Gateway, read_response, route_all};

/// The `Cpus_allowed_list` of a `/proc/.../status` file (e.g. "0-3,6").
fn cpus_allowed_list(status_path: &str) -> String {
    let status = std::fs::read_to_string(status_path).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("Cpus_allowed_list:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("")
        .to_string()
}

fn shard_threads(pid: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let p = e.unwrap().path();
        let comm = std::fs::read_to_string(p.join("comm"))
            .unwrap_or_default()
            .trim()
            .to_string();
        if comm.starts_with("sg-shard-") {
            out.push((comm, cpus_allowed_list(&p.join("status").to_string_lossy())));
        }
    }
    out.sort();
    out
}

/// The CPUs this test process may run on (the gateway inherits them), from a list like "0-3,6".
fn allowed_cpus() -> Vec<usize> {
    let list = cpus_allowed_list("/proc/self/status");
    let mut cpus = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap()),
            None => cpus.push(part.parse().unwrap()),
        }
    }
    cpus
}

#[test]
fn connections_land_on_every_shard_and_shards_are_pinned() {
    let origin = Origin::start();
    let cpus = allowed_cpus();
    for d in DRIVERS {
        let Some(mut g) = Gateway::start(d, "shards = 2\npin = true", &route_all(origin.addr, ""))
        else {
            continue;
        };
        let threads = shard_threads(g.child.id());
        assert_eq!(threads.len(), 2, "{d}: {threads:?}");
        for (i, (name, allowed)) in threads.iter().enumerate() {
            assert_eq!(name, &format!("sg-shard-{i}"));
            assert_eq!(
                allowed,
                &cpus[i % cpus.len()].to_string(),
                "{d}: {name} is pinned to one CPU"
            );
        }
        for _ in 0..64 {
            let r = support::request(g.addr, "GET", "/x", "", b"");
            assert_eq!(r.status, 200);
        }
        g.terminate();
        assert_eq!(g.wait_exit(Duration::from_secs(10)), Some(0));
        let log = g.log_lines();
        let accepted: Vec<u64> = log
            .iter()
            .filter_map(|l| l.split("drained; accepted ").nth(1))
            .map(|r| r.split_whitespace().next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(accepted.len(), 2, "{log:?}");
        assert!(
            accepted.iter().all(|&n| n > 0),
            "{d}: connections on every shard: {accepted:?}"
        );
        assert_eq!(accepted.iter().sum::<u64>(), 64);
    }
}

#[test]
fn unpinned_shards_may_run_anywhere() {
    let origin = Origin::start();
    let Some(g) = Gateway::start(
        "epoll",
        "shards = 2\npin = false",
        &route_all(origin.addr, ""),
    ) else {
        return;
    };
    let mine = cpus_allowed_list("/proc/self/status");
    for (_, allowed) in shard_threads(g.child.id()) {
        assert_eq!(allowed, mine);
    }
}

#[test]
fn sigterm_lets_the_slow_request_finish_then_exits_zero() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some(mut g) = Gateway::start(
            d,
            "shards = 2\ndrain_timeout = \"10s\"",
            &route_all(origin.addr, ""),
        ) else {
            continue;
        };
        // an idle keep-alive connection must not hold the drain up
        let mut idle = g.connect();
        idle.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut p = Vec::new();
        assert_eq!(read_response(&mut idle, &mut p, false).status, 200);
        let mut s = g.connect();
        s.write_all(b"GET /slow/800 HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        g.terminate();
        let mut p = Vec::new();
        let r = read_response(&mut s, &mut p, false);
        assert_eq!(r.status, 200, "{d}: the in-flight request completed");
        assert_eq!(
            r.header("connection"),
            Some("close"),
            "draining answers close the connection"
        );
        assert_eq!(
            g.wait_exit(Duration::from_secs(5)),
            Some(0),
            "{d}: {:?}",
            g.log_lines()
        );
        // new connections are refused once drained
        assert!(std::net::TcpStream::connect(g.addr).is_err());
    }
}
