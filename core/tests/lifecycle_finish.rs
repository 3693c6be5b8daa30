//! Every request that was read ends in exactly one `on_finish`, whatever its outcome: parse
//! errors, 404, 405, refusals, local answers, forwarded, failed and aborted exchanges are each
//! counted once by the shard that finished them (read through the counters message), and a
//! client that hangs up while a stage reads its body never keeps a concurrency permit.
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
use std::net::TcpStream;

use support::inproc::InProcess;
use support::origin::{Origin, closed_port};
use support::{DRIVERS, Gateway, eventually, raw, request};

fn config(origin: std::net::SocketAddr) -> String {
    format!(
        r#"
[[upstream]]
name = "origin"
targets = ["{origin}"]
[[upstream]]
name = "dead"
targets = ["{dead}"]

[[route]]
name = "local"
path = "/local"
[[route.policy]]
kind = "respond"
body = "here"

[[route]]
name = "refused"
path = "/refused"
upstream = "origin"
[[route.policy]]
kind = "ip"
deny = ["127.0.0.0/8"]

[[route]]
name = "get-only"
path = "/get-only"
methods = ["GET"]
upstream = "origin"

[[route]]
name = "dead"
path = "/dead"
upstream = "dead"

[[route]]
name = "forwarded"
path = "/fwd/{{*rest}}"
upstream = "origin"
"#,
        dead = closed_port()
    )
}

#[test]
fn every_outcome_finishes_exactly_once() {
    let origin = Origin::start();
    for driver in DRIVERS {
        let Some(g) = InProcess::start(driver, "shards = 2", &config(origin.addr)) else {
            continue;
        };
        // a parse error (unrouted), a 404, a 405, a refusal, a local answer, a forwarded
        // request and an upstream failure
        let bad = raw(g.addr, b"GET / HTTP/1.1\r\nHost: a\r\nBad Field: x\r\n\r\n");
        assert!(bad.starts_with(b"HTTP/1.1 400 "), "{driver}");
        assert_eq!(request(g.addr, "GET", "/nowhere", "", b"").status, 404);
        assert_eq!(request(g.addr, "POST", "/get-only", "", b"").status, 405);
        assert_eq!(request(g.addr, "GET", "/refused", "", b"").status, 403);
        assert_eq!(request(g.addr, "GET", "/local", "", b"").status, 200);
        assert_eq!(request(g.addr, "GET", "/fwd/a", "", b"").status, 200);
        assert_eq!(request(g.addr, "GET", "/dead", "", b"").status, 502);
        // and one aborted: the client announces a body, sends part of it and hangs up
        let mut s = TcpStream::connect(g.addr).unwrap();
        s.write_all(b"POST /fwd/up HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n")
            .unwrap();
        drop(s);
        assert!(
            eventually(|| g.total().finished == 8),
            "{driver}: {:?}",
            g.total()
        );
        let t = g.total();
        assert_eq!(
            t.requests, 8,
            "{driver}: every exchange begun is counted once"
        );
        // outcomes: answered (400, 404, 405, respond), refused, forwarded, failed, aborted
        assert_eq!(t.outcomes, [4, 1, 1, 1, 1], "{driver}");
        // status classes: none sent (aborted), 1xx, 2xx, 3xx, 4xx, 5xx
        assert_eq!(t.classes, [1, 0, 2, 0, 4, 1], "{driver}");
        assert_eq!(
            t.refusals,
            vec![("refused".to_string(), "ip.denied", 1)],
            "{driver}"
        );
    }
}

/// Issue 8: a client that sends a head and part of a body to a `concurrency` + JSON Schema
/// route and hangs up left its permit taken (the exchange returned before `on_finish`), so a
/// few such clients pushed the route into a permanent 503.
#[test]
fn issue_8_a_client_that_hangs_up_mid_body_releases_its_concurrency_permit() {
    let origin = Origin::start();
    let dir = support::TempDir::new();
    std::fs::write(dir.0.join("schema.json"), r#"{"type": "object"}"#).unwrap();
    let policy = format!(
        "[[route.policy]]\nkind = \"concurrency\"\nmax = 2\n[[route.policy]]\nkind = \"validate\"\njson_schema = \"{}\"\n",
        dir.0.join("schema.json").display()
    );
    for driver in DRIVERS {
        let Some(g) = Gateway::start(
            driver,
            "shards = 1",
            &support::route_all_policy(origin.addr, &policy),
        ) else {
            continue;
        };
        for _ in 0..20 {
            let mut s = g.connect();
            s.write_all(
                b"POST /data HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"partial\":",
            )
            .unwrap();
            drop(s);
        }
        // the hang-ups are noticed while this request waits its turn: it is admitted
        let body = br#"{"whole": true}"#;
        let admitted = eventually(|| {
            let r = request(
                g.addr,
                "POST",
                "/data",
                &format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n",
                    body.len()
                ),
                body,
            );
            r.status == 200
        });
        assert!(admitted, "{driver}: the route still admits requests");
    }
}
