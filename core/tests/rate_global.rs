//! `rate_limit` with `scope = "global"` across gateway processes sharing one real Redis:
//! three nodes of two shards offered three times the rate admit it within 5 %, evenly or
//! skewed 90/10; a key at one request per second never gets more than its burst above the
//! rate; Redis killed mid-run makes each `on_redis_down` mode do what it says within a lease's
//! expiry with no request hanging, and leasing resumes when it is back. Skips, saying why,
//! without `redis-server`.
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
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::redis::Redis;
use support::{DEADLINE, Gateway, read_response, request};

/// A node of `shards` shards leasing from Redis on `port`, with `routes`.
fn node(port: u16, nodes: u32, routes: &str) -> Gateway {
    let text = format!(
        "[redis]\naddress = \"127.0.0.1:{port}\"\nnodes = {nodes}\nlease_ttl = \"1s\"\ncommand_timeout = \"200ms\"\n\n{routes}"
    );
    Gateway::start("auto", "shards = 2", &text).expect("gateway starts")
}

/// A route `path` limited to `rate`/s (burst `burst`) fleet-wide, then answered here.
fn limited(path: &str, rate: u64, burst: u64, down: &str) -> String {
    format!(
        "[[route]]\nname = \"{path}\"\npath = \"{path}\"\n[[route.policy]]\nkind = \"rate_limit\"\nscope = \"global\"\nrate = {rate}\nburst = {burst}\nkey = [\"route\"]\non_redis_down = \"{down}\"\n[[route.policy]]\nkind = \"respond\"\n\n"
    )
}

/// Offers `per_sec` requests a second to `path` on `addr` for `secs`, over `conns`
/// keep-alive connections (so both shards see some); (admitted, refused) counts.
fn offer(addr: SocketAddr, path: &str, per_sec: f64, secs: f64, conns: usize) -> (u64, u64) {
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let path = path.to_string();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(DEADLINE)).unwrap();
                let mut pending = Vec::new();
                let (mut ok, mut refused) = (0, 0);
                let every = Duration::from_secs_f64(conns as f64 / per_sec);
                let start = Instant::now();
                let mut i = 0u32;
                while start.elapsed().as_secs_f64() < secs {
                    // open loop: each request at its slot (the load, not a wait for a result)
                    let slot = start + every * i;
                    if let Some(d) = slot.checked_duration_since(Instant::now()) {
                        std::thread::sleep(d);
                    }
                    i += 1;
                    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
                        .unwrap();
                    match read_response(&mut s, &mut pending, false).status {
                        200 => ok += 1,
                        429 => refused += 1,
                        other => panic!("{path}: status {other}"),
                    }
                }
                (ok, refused)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

#[test]
fn three_nodes_offered_three_times_the_rate_admit_it_within_five_percent() {
    let Some(redis) = Redis::start() else { return };
    // /even: 100/s over three nodes evenly; /skew: 100/s, 90 % of the load on one node;
    // /slow: one request a second over two nodes
    let routes = format!(
        "{}{}{}",
        limited("/even", 100, 10, "deny"),
        limited("/skew", 100, 10, "deny"),
        limited("/slow", 1, 1, "deny")
    );
    let nodes: Vec<Gateway> = (0..3).map(|_| node(redis.port, 3, &routes)).collect();
    let addrs: Vec<SocketAddr> = nodes.iter().map(|g| g.addr).collect();
    let secs = 20.0;
    let mut runs = Vec::new();
    for &a in &addrs {
        runs.push(std::thread::spawn(move || {
            ("even", offer(a, "/even", 100.0, secs, 4))
        }));
    }
    let (a, b) = (addrs[0], addrs[1]);
    runs.push(std::thread::spawn(move || {
        ("skew", offer(a, "/skew", 270.0, secs, 6))
    }));
    runs.push(std::thread::spawn(move || {
        ("skew", offer(b, "/skew", 30.0, secs, 2))
    }));
    runs.push(std::thread::spawn(move || {
        ("slow", offer(a, "/slow", 10.0, 5.0, 2))
    }));
    runs.push(std::thread::spawn(move || {
        ("slow", offer(b, "/slow", 10.0, 5.0, 2))
    }));
    let mut admitted = std::collections::BTreeMap::new();
    for r in runs {
        let (name, (ok, _)) = r.join().unwrap();
        *admitted.entry(name).or_insert(0u64) += ok;
    }
    println!("admitted: {admitted:?}");
    // the rate over the window, and the burst the bucket starts with
    let want = 100.0 * secs;
    for name in ["even", "skew"] {
        let got = admitted[name] as f64;
        assert!(
            (got - want).abs() <= want * 0.05,
            "{name}: {got} admitted, {want} ± 5 % wanted"
        );
    }
    // one a second for 5 s, a burst of 1: never more than 6
    assert!(
        admitted["slow"] <= 6 && admitted["slow"] >= 3,
        "slow: {}",
        admitted["slow"]
    );
}

#[test]
fn each_on_redis_down_mode_does_what_it_says_and_leasing_resumes() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let routes = format!(
        "{}{}{}",
        limited("/deny", 1000, 1000, "deny"),
        limited("/allow", 2, 2, "allow"),
        limited("/local", 1000, 1000, "local")
    );
    let g = node(redis.port, 1, &routes);
    for p in ["/deny", "/allow", "/local"] {
        assert_eq!(
            request(g.addr, "GET", p, "", b"").status,
            200,
            "{p} with Redis up"
        );
    }
    redis.stop();
    // within a lease's expiry (1 s) and a command timeout, each mode says what it does;
    // every request is answered (read timeout: DEADLINE)
    let started = Instant::now();
    // (a shard still holding leased tokens spends them until the lease expires: both
    // shards refuse after that)
    assert!(
        support::eventually(
            || (0..10).all(|_| request(g.addr, "GET", "/deny", "", b"").status == 503)
        ),
        "deny never refused"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let r = request(g.addr, "GET", "/deny", "", b"");
    assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
    // /allow's own rate is 2/s: with Redis away everything passes
    assert!(support::eventually(|| (0..20).all(|_| request(
        g.addr, "GET", "/allow", "", b""
    )
    .status
        == 200)));
    // /local: this node's share of 1000/s admits these
    assert!((0..20).all(|_| request(g.addr, "GET", "/local", "", b"").status == 200));
    redis.restart();
    assert!(
        support::eventually(|| request(g.addr, "GET", "/deny", "", b"").status == 200),
        "leasing did not resume"
    );
    // /allow leases again: its 2/s applies
    assert!(support::eventually(|| (0..10).any(|_| request(
        g.addr, "GET", "/allow", "", b""
    )
    .status
        == 429)));
}

#[test]
fn a_node_killed_while_holding_leases_leaves_the_rate_to_the_others_within_a_lease() {
    let Some(redis) = Redis::start() else { return };
    let routes = limited("/k", 100, 10, "deny");
    let survivor = node(redis.port, 2, &routes);
    let doomed = node(redis.port, 2, &routes);
    let (a, b) = (survivor.addr, doomed.addr);
    let other = std::thread::spawn(move || offer(b, "/k", 150.0, 2.0, 4));
    let (before, _) = offer(a, "/k", 150.0, 2.0, 4);
    let (theirs, _) = other.join().unwrap();
    assert!(before + theirs <= 100 * 2 + 10 + 20, "{before} + {theirs}");
    // killed holding its leases (SIGKILL: nothing handed back)
    drop(doomed);
    // one lease's expiry later the survivor alone admits the whole rate
    let _ = offer(a, "/k", 300.0, 1.0, 4);
    let (after, _) = offer(a, "/k", 300.0, 3.0, 4);
    let want = 300.0;
    assert!(
        (after as f64 - want).abs() <= want * 0.1,
        "{after} admitted in 3 s after the node died, {want} ± 10 % wanted"
    );
}

#[test]
fn a_redis_that_hangs_is_down_after_a_command_timeout_and_no_request_hangs_with_it() {
    let Some(redis) = Redis::start() else { return };
    let g = node(redis.port, 1, &limited("/h", 1000, 1000, "deny"));
    assert_eq!(request(g.addr, "GET", "/h", "", b"").status, 200);
    redis.freeze(true);
    // every request is answered (each within the client's deadline); once the leases held
    // expire, the broker's command times out and the mode applies
    let started = Instant::now();
    assert!(
        support::eventually(|| (0..10).all(|_| request(g.addr, "GET", "/h", "", b"").status == 503)),
        "deny never refused while Redis hung"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    redis.freeze(false);
    assert!(
        support::eventually(|| request(g.addr, "GET", "/h", "", b"").status == 200),
        "leasing did not resume after Redis thawed"
    );
}
