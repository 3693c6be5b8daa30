//! Every reject rule, as raw bytes through a real gateway: the right status, a problem+json
//! body, and nothing reaches the upstream. Request-smuggling classics included.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use support::origin::Origin;
use support::{DRIVERS, Gateway, raw, route_all};

fn status_of(out: &[u8]) -> u16 {
    String::from_utf8_lossy(out)
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

const CASES: &[(&str, &[u8], u16)] = &[
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX: v\r\n folded\r\n\r\n", 400),
    ("space before colon", b"GET / HTTP/1.1\r\nHost: a\r\nX-Test : v\r\n\r\n", 400),
    ("invalid token", b"GET / HTTP/1.1\r\nHost: a\r\nBad[Name: v\r\n\r\n", 400),
    ("bare CR", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400),
    ("bare LF", b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
    ("NUL in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
    ("NUL in target", b"GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("relative target", b"GET foo HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("asterisk with GET", b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("bad version", b"GET / HTTP/1.x\r\nHost: a\r\n\r\n", 400),
    ("version 2.0", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    ("missing host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("unknown coding", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ("CONNECT", b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501),
    ("CL+TE", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE+CL", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n0\r\n\r\n", 400),
    ("xchunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501),
    ("chunked, identity", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400),
    ("duplicate differing CL", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
    ("obs-fold on TE", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400),
    ("space before colon on CL", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello", 400),
    ("bad chunk size", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk overflow", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF0\r\nx\r\n0\r\n\r\n", 400),
    ("expectation", b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417),
    ("CL not a number", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", 400),
    ("CL with sign", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", 400),
    ("CL list that disagrees", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!", 400),
    ("TE on HTTP/1.0", b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("bad chunk extension", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;\r\nhello\r\n0\r\n\r\n", 400),
];

#[test]
fn each_reject_rule_answers_its_status_and_forwards_nothing() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all(origin.addr, "")) else {
            continue;
        };
        origin.reset_counts();
        for (name, bytes, want) in CASES {
            let out = raw(g.addr, bytes);
            assert_eq!(
                status_of(&out),
                *want,
                "{d} {name}: {}",
                String::from_utf8_lossy(&out)
            );
            let text = String::from_utf8_lossy(&out);
            assert!(
                text.contains("Content-Type: application/problem+json"),
                "{name}"
            );
            assert!(
                text.contains("Connection: close"),
                "{name}: framing is lost, the connection closes"
            );
        }
        assert_eq!(
            origin.records().len(),
            0,
            "{d}: a rejected request reached the upstream"
        );
        assert_eq!(origin.accepts(), 0);
    }
}

#[test]
fn limits_answer_414_and_431() {
    let origin = Origin::start();
    let server = "shards = 1\nmax_request_line = \"1KiB\"\nmax_head = \"4KiB\"\nmax_headers = 10\nclient_buffer = \"8KiB\"";
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, server, &route_all(origin.addr, "")) else {
            continue;
        };
        let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(2000));
        assert_eq!(status_of(&raw(g.addr, long.as_bytes())), 414, "{d}");
        let big = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "b".repeat(5000)
        );
        assert_eq!(status_of(&raw(g.addr, big.as_bytes())), 431, "{d}");
        let many: String = (0..20).map(|i| format!("X-{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
        assert_eq!(status_of(&raw(g.addr, many.as_bytes())), 431, "{d}");
        assert_eq!(origin.records().len(), 0);
    }
}

#[test]
fn smuggled_request_after_a_rejected_one_never_runs() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all(origin.addr, "")) else {
            continue;
        };
        origin.reset_counts();
        let out = raw(
            g.addr,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /SMUGGLED HTTP/1.1\r\nHost: a\r\n\r\n",
        );
        assert_eq!(status_of(&out), 400);
        assert_eq!(
            String::from_utf8_lossy(&out).matches("HTTP/1.1").count(),
            1,
            "one answer, then close"
        );
        assert!(origin.records().is_empty(), "{d}");
    }
}

#[test]
fn timeouts_answer_408() {
    let origin = Origin::start();
    let server = "shards = 1\nclient_head_timeout = \"300ms\"\nclient_body_timeout = \"300ms\"";
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, server, &route_all(origin.addr, "")) else {
            continue;
        };
        let out = raw(g.addr, b"GET / HTTP/1.1\r\nHost: a\r\n");
        assert_eq!(status_of(&out), 408, "{d}: head timeout");
        let out = raw(
            g.addr,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n",
        );
        assert_eq!(status_of(&out), 408, "{d}: body never started");
    }
}

#[test]
fn bodies_over_max_body_get_413_and_are_not_forwarded_whole() {
    let origin = Origin::start();
    let server = "shards = 1\nmax_body = \"1KiB\"";
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, server, &route_all(origin.addr, "")) else {
            continue;
        };
        origin.reset_counts();
        // Content-Length over the limit: refused before anything is forwarded
        let out = raw(
            g.addr,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1025\r\n\r\n",
        );
        assert_eq!(status_of(&out), 413, "{d}");
        assert_eq!(origin.accepts(), 0);
        // chunked, one byte over the limit, in two chunks
        let mut req = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        req.extend_from_slice(&support::chunked(&vec![b'x'; 1025], 600));
        let out = raw(g.addr, &req);
        assert_eq!(
            status_of(&out),
            413,
            "{d}: {}",
            String::from_utf8_lossy(&out)
        );
        assert!(
            origin.records().is_empty(),
            "{d}: the oversized body never completed upstream"
        );
        // exactly the limit passes
        let r = support::request(
            g.addr,
            "POST",
            "/",
            "Content-Length: 1024\r\n",
            &[b'y'; 1024],
        );
        assert_eq!(r.status, 200);
    }
}
