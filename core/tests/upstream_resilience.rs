//! Traffic management against real targets: a killed target costs no idempotent request
//! (retries to another target, passive ejection, the prober marking it down) and gets traffic
//! again once back; a POST without retries fails fast; health verdicts reach every shard;
//! retries stay inside their budget; a retry is re-addressed; hashing keeps a key on a target.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use shardgate::control::TargetCounters;
use support::fleet::Target;
use support::inproc::InProcess;
use support::{DEADLINE, DRIVERS, eventually, read_response, request};

/// One upstream `pool` over `targets` (with `extra` settings and tables) behind one route.
fn config(targets: &[&Target], extra: &str) -> String {
    let list: Vec<String> = targets.iter().map(|t| format!("\"{}\"", t.addr)).collect();
    format!(
        "[[upstream]]\nname = \"pool\"\ntargets = [{}]\n{extra}\n[[route]]\npath = \"/{{*rest}}\"\nupstream = \"pool\"\n",
        list.join(", ")
    )
}

/// Fast health checks on `/healthz`.
const HEALTH: &str = "[upstream.health]\npath = \"/healthz\"\ninterval = \"50ms\"\ntimeout = \"50ms\"\njitter = \"0ms\"\nhealthy_threshold = 2\nunhealthy_threshold = 2\n";

/// `clients` keep-alive clients each sending `per` requests (`method`, with a small body for
/// POST); `mid` runs once `at` answers came back. Every answer arrives within the deadline
/// (a hang fails the test); statuses are counted.
fn load(
    addr: SocketAddr,
    clients: usize,
    per: usize,
    method: &'static str,
    at: usize,
    mid: impl FnOnce(),
) -> HashMap<u16, usize> {
    let done = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut statuses = HashMap::new();
                let mut conn: Option<(TcpStream, Vec<u8>)> = None;
                for _ in 0..per {
                    let (s, pending) = conn.get_or_insert_with(|| {
                        let s = TcpStream::connect(addr).unwrap();
                        s.set_read_timeout(Some(DEADLINE)).unwrap();
                        (s, Vec::new())
                    });
                    let req = if method == "POST" {
                        "POST /work HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nx=1".to_string()
                    } else {
                        format!("{method} /work HTTP/1.1\r\nHost: t\r\n\r\n")
                    };
                    s.write_all(req.as_bytes()).unwrap();
                    let r = read_response(s, pending, false);
                    *statuses.entry(r.status).or_insert(0) += 1;
                    done.fetch_add(1, Ordering::SeqCst);
                    if r.header("connection")
                        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                    {
                        conn = None;
                    }
                }
                statuses
            })
        })
        .collect();
    assert!(eventually(|| done.load(Ordering::SeqCst) >= at));
    mid();
    let mut all = HashMap::new();
    for t in threads {
        for (k, v) in t.join().unwrap() {
            *all.entry(k).or_insert(0) += v;
        }
    }
    all
}

/// The state of target `addr` on every shard.
fn states(g: &InProcess, addr: SocketAddr) -> Vec<TargetCounters> {
    g.counters(Duration::from_secs(5))
        .into_iter()
        .flat_map(|c| c.targets)
        .filter(|t| t.addr == addr)
        .collect()
}

#[test]
fn a_killed_target_costs_no_get_and_gets_traffic_again_once_back() {
    for driver in DRIVERS {
        let ts: Vec<Target> = (0..3).map(|_| Target::start()).collect();
        let refs: Vec<&Target> = ts.iter().collect();
        let extra = format!(
            "{HEALTH}[upstream.outlier]\nbase_ejection = \"100ms\"\nmax_ejection = \"200ms\"\n"
        );
        let Some(g) = InProcess::start(driver, "", &config(&refs, &extra)) else {
            continue;
        };
        let victim = &ts[1];
        let statuses = load(g.addr, 8, 250, "GET", 500, || victim.kill());
        assert_eq!(
            statuses.keys().collect::<Vec<_>>(),
            [&200],
            "{driver}: {statuses:?}"
        );
        // ejected by the shard that saw it fail, and marked down by the prober
        assert!(
            eventually(|| states(&g, victim.addr).iter().all(|t| t.down)),
            "{driver}: the prober marks the dead target down"
        );
        // (a shard that got none of the load's connections saw no failure to eject on)
        let s = states(&g, victim.addr);
        assert!(
            s.iter().any(|t| t.ejections >= 1),
            "{driver}: passive ejection: {s:?}"
        );
        assert!(g.total().retries > 0, "{driver}: failures were retried");
        // back: marked up again, and it gets requests
        victim.revive();
        assert!(eventually(|| states(&g, victim.addr)
            .iter()
            .all(|t| !t.down)));
        victim.reset();
        assert!(eventually(|| {
            request(g.addr, "GET", "/again", "", b"");
            victim.requests() > 0
        }));
    }
}

#[test]
fn a_post_without_retries_fails_fast_when_its_target_dies() {
    for driver in DRIVERS {
        let ts: Vec<Target> = (0..3).map(|_| Target::start()).collect();
        let refs: Vec<&Target> = ts.iter().collect();
        let extra = "[upstream.retry]\nretries = 0\n";
        let Some(g) = InProcess::start(driver, "", &config(&refs, extra)) else {
            continue;
        };
        let statuses = load(g.addr, 8, 150, "POST", 300, || ts[0].kill());
        // every request was answered (the load would have failed on a hang), and the only
        // failures are the gateway's own 502/503
        assert!(
            statuses.keys().all(|s| [200, 502, 503].contains(s)),
            "{driver}: {statuses:?}"
        );
        assert_eq!(statuses.values().sum::<usize>(), 8 * 150);
        assert!(
            statuses.get(&200).is_some_and(|&n| n > 600),
            "{driver}: {statuses:?}"
        );
        assert_eq!(g.total().retries, 0, "{driver}: nothing was retried");
    }
}

#[test]
fn a_target_marked_down_by_the_prober_gets_no_requests_from_either_shard() {
    for driver in DRIVERS {
        let ts: Vec<Target> = (0..3).map(|_| Target::start()).collect();
        let refs: Vec<&Target> = ts.iter().collect();
        let Some(g) = InProcess::start(driver, "shards = 2", &config(&refs, HEALTH)) else {
            continue;
        };
        let sick = &ts[2];
        sick.sick(true);
        assert!(
            eventually(|| {
                let s = states(&g, sick.addr);
                s.len() == 2 && s.iter().all(|t| t.down)
            }),
            "{driver}: both shards hear the verdict"
        );
        // one prober for the gateway, not one per shard: a check every 50 ms
        let before = sick.checks();
        let mut served_by = vec![0u64; 2];
        let start: Vec<u64> = g
            .counters(Duration::from_secs(5))
            .iter()
            .map(|c| c.requests)
            .collect();
        for i in 0..200 {
            let r = request(g.addr, "GET", &format!("/{i}"), "", b"");
            assert_eq!(r.status, 200);
        }
        for (i, c) in g.counters(Duration::from_secs(5)).iter().enumerate() {
            served_by[i] = c.requests - start[i];
        }
        assert!(
            served_by.iter().all(|&n| n > 0),
            "{driver}: both shards served: {served_by:?}"
        );
        assert_eq!(sick.requests(), 0, "{driver}: the down target got nothing");
        assert!(ts[0].requests() > 0 && ts[1].requests() > 0);
        let checks = sick.checks() - before;
        assert!(
            checks < 200,
            "{driver}: {checks} checks while 200 requests were served"
        );
        // healthy again: back in the rotation on both shards
        sick.sick(false);
        assert!(eventually(|| states(&g, sick.addr).iter().all(|t| !t.down)));
    }
}

#[test]
fn retries_stay_within_the_budget_when_every_target_fails() {
    for driver in DRIVERS {
        let ts: Vec<Target> = (0..3).map(|_| Target::start()).collect();
        for t in &ts {
            t.answer(503);
        }
        let refs: Vec<&Target> = ts.iter().collect();
        let extra = "[upstream.retry]\nretries = 2\non_status = [503]\nbudget = 0.2\n[upstream.outlier]\nconsecutive_failures = 0\n";
        let Some(g) = InProcess::start(driver, "", &config(&refs, extra)) else {
            continue;
        };
        let statuses = load(g.addr, 4, 250, "GET", 0, || {});
        assert_eq!(statuses.get(&503), Some(&1000), "{driver}: {statuses:?}");
        let attempts: usize = ts.iter().map(Target::requests).sum();
        // 1000 requests earn 200 retries; each shard's budget starts with its reserve of 10
        let shards = g.counters(Duration::from_secs(5)).len();
        assert!(
            (1150..=1200 + 10 * shards).contains(&attempts),
            "{driver}: {attempts} attempts for 1000 requests, {} retries counted",
            g.total().retries
        );
        assert_eq!(g.total().retries as usize, attempts - 1000);
    }
}

#[test]
fn a_retry_to_another_target_names_that_target_in_host() {
    for driver in DRIVERS {
        let dead = Target::start();
        dead.kill();
        let live = Target::start();
        let extra = "balance = \"round_robin\"\nhost = \"target\"\n";
        let Some(g) = InProcess::start(driver, "", &config(&[&dead, &live], extra)) else {
            continue;
        };
        for _ in 0..4 {
            assert_eq!(request(g.addr, "GET", "/", "", b"").status, 200);
        }
        let want = live.addr.to_string();
        assert!(
            live.hosts().iter().all(|h| *h == want),
            "{driver}: {:?}",
            live.hosts()
        );
    }
}

#[test]
fn a_hashed_header_keeps_a_client_on_one_target() {
    for driver in DRIVERS {
        let ts: Vec<Target> = (0..3).map(|_| Target::start()).collect();
        let refs: Vec<&Target> = ts.iter().collect();
        let extra = "balance = \"maglev\"\nhash_on = \"header:X-User\"\n";
        let Some(g) = InProcess::start(driver, "", &config(&refs, extra)) else {
            continue;
        };
        let home = |user: &str| {
            let r = request(g.addr, "GET", "/", &format!("X-User: {user}\r\n"), b"");
            String::from_utf8(r.body).unwrap()
        };
        let alice = home("alice");
        assert!((0..20).all(|_| home("alice") == alice), "{driver}");
        let homes: std::collections::HashSet<String> =
            (0..30).map(|i| home(&format!("user-{i}"))).collect();
        assert!(homes.len() >= 2, "{driver}: users spread: {homes:?}");
    }
}

#[test]
fn a_failing_target_trips_its_breaker_fails_fast_and_recovers_through_half_open() {
    for driver in DRIVERS {
        let t = Target::start();
        t.answer(500);
        let extra = "[upstream.breaker]\nwindow = \"10s\"\nfailure_rate = 0.5\nmin_requests = 10\ncool_down = \"300ms\"\ntrials = 2\n";
        let Some(g) = InProcess::start(driver, "shards = 1", &config(&[&t], extra)) else {
            continue;
        };
        for _ in 0..10 {
            assert_eq!(request(g.addr, "GET", "/", "", b"").status, 500);
        }
        assert_eq!(states(&g, t.addr)[0].circuit, "open", "{driver}");
        // open: answered at once, nothing reaches the target
        t.reset();
        let accepted = g.total().accepted;
        for _ in 0..20 {
            let r = request(g.addr, "GET", "/", "", b"");
            assert_eq!(r.status, 503, "{driver}");
            assert_eq!(r.header("retry-after"), Some("1"));
            assert_eq!(r.header("content-type"), Some("application/problem+json"));
        }
        assert_eq!(t.requests(), 0, "{driver}: no attempt while open");
        assert_eq!(g.total().accepted, accepted + 20);
        // a keep-alive client is answered fast on the same connection, request after request
        let mut s = std::net::TcpStream::connect(g.addr).unwrap();
        s.set_read_timeout(Some(support::DEADLINE)).unwrap();
        let mut pending = Vec::new();
        for _ in 0..3 {
            s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            let r = read_response(&mut s, &mut pending, false);
            assert_eq!(r.status, 503, "{driver}");
            assert_ne!(r.header("connection"), Some("close"), "{driver}");
        }
        drop(s);
        // the target heals; after the cool-down two trials pass and the circuit closes
        t.answer(200);
        assert!(eventually(
            || request(g.addr, "GET", "/", "", b"").status == 200
        ));
        assert!(
            eventually(|| {
                request(g.addr, "GET", "/", "", b"");
                states(&g, t.addr)[0].circuit == "closed"
            }),
            "{driver}"
        );
        assert!((0..10).all(|_| request(g.addr, "GET", "/", "", b"").status == 200));
    }
}

#[test]
fn an_open_group_answers_its_fallback() {
    for driver in DRIVERS {
        let t = Target::start();
        t.answer(503);
        let extra = "[upstream.retry]\nretries = 0\n[upstream.breaker]\nmin_requests = 3\nfailure_rate = 1.0\ncool_down = \"60s\"\nfallback_status = 200\nfallback_body = '{\"degraded\": true}'\n";
        let Some(g) = InProcess::start(driver, "shards = 1", &config(&[&t], extra)) else {
            continue;
        };
        for _ in 0..3 {
            assert_eq!(request(g.addr, "GET", "/", "", b"").status, 503);
        }
        let r = request(g.addr, "GET", "/", "", b"");
        assert_eq!(r.status, 200, "{driver}");
        assert_eq!(r.body, b"{\"degraded\": true}");
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
}
