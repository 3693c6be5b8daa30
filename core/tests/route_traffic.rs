//! A route's traffic settings against real targets: a weighted split lands within 2 % of its
//! weights, a sticky split keeps a client on one side, a header sends requests to the canary,
//! a mirror copies its share to a shadow whose failures the client never sees, and route
//! timeouts (first byte, total) answer 504 in time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use std::time::{Duration, Instant};

use support::fleet::Target;
use support::inproc::InProcess;
use support::{DRIVERS, eventually, request};

/// Groups `stable`, `canary` and `shadow` (one target each) and one route with `route`'s
/// settings (`upstream`, tables).
fn config(stable: &Target, canary: &Target, shadow: &Target, route: &str) -> String {
    format!(
        "[[upstream]]\nname = \"stable\"\ntargets = [\"{}\"]\n[[upstream]]\nname = \"canary\"\ntargets = [\"{}\"]\n[[upstream]]\nname = \"shadow\"\ntargets = [\"{}\"]\n[upstream.retry]\nretries = 0\n[[route]]\npath = \"/{{*rest}}\"\n{route}\n",
        stable.addr, canary.addr, shadow.addr
    )
}

fn three() -> (Target, Target, Target) {
    (Target::start(), Target::start(), Target::start())
}

#[test]
fn a_weighted_split_lands_within_two_percent_and_a_header_picks_the_canary() {
    for driver in DRIVERS {
        let (a, b, c) = three();
        let route = "[[route.split]]\nupstream = \"stable\"\nweight = 95\n[[route.split]]\nupstream = \"canary\"\nweight = 5\n[[route.when]]\nheader = \"X-Canary\"\nvalue = \"1\"\nupstream = \"canary\"\n";
        let Some(g) = InProcess::start(driver, "shards = 1", &config(&a, &b, &c, route)) else {
            continue;
        };
        let mut s = std::net::TcpStream::connect(g.addr).unwrap();
        s.set_read_timeout(Some(support::DEADLINE)).unwrap();
        let mut pending = Vec::new();
        for _ in 0..2000 {
            std::io::Write::write_all(&mut s, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            assert_eq!(
                support::read_response(&mut s, &mut pending, false).status,
                200
            );
        }
        let canary = b.requests() as f64 / 2000.0;
        assert!(
            (0.03..=0.07).contains(&canary),
            "{driver}: canary share {canary}"
        );
        b.reset();
        for _ in 0..10 {
            request(g.addr, "GET", "/", "X-Canary: 1\r\n", b"");
        }
        assert_eq!(b.requests(), 10, "{driver}: the header picks the canary");
        request(g.addr, "GET", "/", "X-Canary: 2\r\n", b"");
        assert_eq!(b.requests(), 10, "{driver}: another value does not");
        assert_eq!(c.requests(), 0, "{driver}: the shadow is not in the split");
    }
}

#[test]
fn a_sticky_split_keeps_a_client_on_one_side() {
    for driver in DRIVERS {
        let (a, b, c) = three();
        let route = "split_on = \"cookie:session\"\n[[route.split]]\nupstream = \"stable\"\nweight = 50\n[[route.split]]\nupstream = \"canary\"\nweight = 50\n";
        let Some(g) = InProcess::start(driver, "", &config(&a, &b, &c, route)) else {
            continue;
        };
        let side = |session: &str| {
            let r = request(
                g.addr,
                "GET",
                "/",
                &format!("Cookie: session={session}\r\n"),
                b"",
            );
            String::from_utf8(r.body).unwrap()
        };
        for i in 0..20 {
            let first = side(&format!("s{i}"));
            assert!((0..5).all(|_| side(&format!("s{i}")) == first), "{driver}");
        }
        assert!(
            a.requests() > 0 && b.requests() > 0,
            "{driver}: both sides get sessions"
        );
    }
}

#[test]
fn a_mirror_copies_its_share_and_a_dead_shadow_changes_nothing() {
    for driver in DRIVERS {
        let (a, b, c) = three();
        let route = "upstream = \"stable\"\n[route.mirror]\nupstream = \"shadow\"\npercent = 50\n";
        let Some(g) = InProcess::start(driver, "shards = 1", &config(&a, &b, &c, route)) else {
            continue;
        };
        for i in 0..40 {
            let r = request(
                g.addr,
                "POST",
                &format!("/{i}"),
                "Content-Length: 2\r\n",
                b"hi",
            );
            assert_eq!(r.status, 200);
        }
        assert!(
            eventually(|| c.requests() == 20),
            "{driver}: {} copies",
            c.requests()
        );
        assert_eq!(a.requests(), 40);
        // a shadow that is slow or gone costs the client nothing
        c.delay(2000);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(request(g.addr, "GET", "/", "", b"").status, 200);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "{driver}: the client never waits for the shadow"
        );
        c.kill();
        assert!((0..10).all(|_| request(g.addr, "GET", "/", "", b"").status == 200));
        assert_eq!(b.requests(), 0);
    }
}

#[test]
fn route_timeouts_answer_504() {
    for driver in DRIVERS {
        let (a, b, c) = three();
        a.delay(1500);
        let route = "upstream = \"stable\"\n[route.timeouts]\nfirst_byte = \"200ms\"\n";
        let Some(g) = InProcess::start(driver, "shards = 1", &config(&a, &b, &c, route)) else {
            continue;
        };
        let r = request(g.addr, "GET", "/", "", b"");
        assert_eq!(r.status, 504, "{driver}");
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        drop(g);
        // the total deadline covers retries too: two slow targets, one retry, 300 ms in all
        b.delay(1500);
        let text = format!(
            "[[upstream]]\nname = \"both\"\ntargets = [\"{}\", \"{}\"]\n[upstream.retry]\nretries = 1\non_status = [502]\n[[route]]\npath = \"/{{*rest}}\"\nupstream = \"both\"\n[route.timeouts]\ntotal = \"300ms\"\n",
            a.addr, b.addr
        );
        let Some(g) = InProcess::start(driver, "shards = 1", &text) else {
            continue;
        };
        let t0 = Instant::now();
        let r = request(g.addr, "GET", "/", "", b"");
        assert_eq!(r.status, 504, "{driver}");
        assert!(
            t0.elapsed() < Duration::from_millis(1400),
            "{driver}: {:?}",
            t0.elapsed()
        );
    }
}
