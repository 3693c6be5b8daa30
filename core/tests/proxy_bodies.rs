//! Methods and bodies through a real gateway: Content-Length and chunked, 0 B, 1 B, 64 KiB,
//! both directions, under each driver.
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
use support::{DRIVERS, Gateway, chunked, pattern, request, route_all};

const SIZES: [usize; 3] = [0, 1, 64 * 1024];

#[test]
fn request_bodies_arrive_intact_with_content_length_and_chunked() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all(origin.addr, "")) else {
            continue;
        };
        for method in ["POST", "PUT", "DELETE", "GET"] {
            for n in SIZES {
                let body = pattern(n);
                origin.reset_counts();
                let r = request(
                    g.addr,
                    method,
                    "/echo",
                    &format!("Content-Length: {n}\r\n"),
                    &body,
                );
                assert_eq!(r.status, 200, "{d} {method} {n}");
                assert_eq!(r.body, body, "{d} {method} CL {n}: echoed body");
                let rec = &origin.records()[0];
                assert_eq!(rec.method, method);
                assert_eq!(rec.body, body);

                origin.reset_counts();
                let r = request(
                    g.addr,
                    method,
                    "/echo",
                    "Transfer-Encoding: chunked\r\n",
                    &chunked(&body, 1000),
                );
                assert_eq!(r.status, 200, "{d} {method} chunked {n}");
                assert_eq!(r.body, body, "{d} {method} chunked {n}: echoed body");
                let rec = &origin.records()[0];
                assert_eq!(rec.body, body);
                assert_eq!(rec.header("transfer-encoding").as_deref(), Some("chunked"));
            }
        }
    }
}

#[test]
fn response_bodies_arrive_intact_with_content_length_and_chunked() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all(origin.addr, "")) else {
            continue;
        };
        for n in SIZES {
            let r = request(g.addr, "GET", &format!("/size/{n}"), "", b"");
            assert_eq!(r.status, 200);
            assert_eq!(r.header("content-length"), Some(n.to_string().as_str()));
            assert_eq!(r.body, pattern(n), "{d} size {n}");
            let r = request(g.addr, "GET", &format!("/chunked/{n}"), "", b"");
            assert_eq!(r.status, 200);
            assert_eq!(r.header("transfer-encoding"), Some("chunked"));
            assert_eq!(r.body, pattern(n), "{d} chunked {n}");
        }
    }
}

#[test]
fn head_responses_have_no_body_but_keep_content_length() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all(origin.addr, "")) else {
            continue;
        };
        let mut s = g.connect();
        use std::io::Write;
        s.write_all(
            b"HEAD /size/5000 HTTP/1.1\r\nHost: t\r\n\r\nGET /size/3 HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .unwrap();
        let mut pending = Vec::new();
        let r = support::read_response(&mut s, &mut pending, true);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-length"), Some("5000"));
        let r = support::read_response(&mut s, &mut pending, false);
        assert_eq!(
            r.body,
            pattern(3),
            "{d}: the HEAD response carried no body bytes"
        );
    }
}

#[test]
fn bodyless_interim_and_close_delimited_responses() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all(origin.addr, "")) else {
            continue;
        };
        use std::io::Write;
        let mut s = g.connect();
        s.write_all(b"GET /204 HTTP/1.1\r\nHost: t\r\n\r\nGET /304 HTTP/1.1\r\nHost: t\r\n\r\nGET /early-hints HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut p = Vec::new();
        let r = support::read_response(&mut s, &mut p, false);
        assert_eq!(r.status, 204, "{d}");
        let r = support::read_response(&mut s, &mut p, false);
        assert_eq!(
            (r.status, r.header("content-length")),
            (304, Some("99")),
            "{d}: a 304 keeps its Content-Length"
        );
        let r = support::read_response(&mut s, &mut p, false);
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"final"[..]),
            "{d}: the interim 103 is not relayed"
        );
        // no length from the upstream: the client gets the body and then the close
        let out = support::raw(g.addr, b"GET /no-length HTTP/1.1\r\nHost: t\r\n\r\n");
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\n") && text.contains("Connection: close"),
            "{text}"
        );
        assert!(text.ends_with("\r\n\r\nuntil close"), "{d}: {text}");
    }
}

#[test]
fn http10_client_gets_a_close_delimited_body_from_a_chunked_upstream() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all(origin.addr, "")) else {
            continue;
        };
        let out = support::raw(g.addr, b"GET /chunked/10000 HTTP/1.0\r\n\r\n");
        let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&out[..split]).to_string();
        let body = &out[split + 4..];
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            !head.to_ascii_lowercase().contains("transfer-encoding"),
            "{head}"
        );
        assert!(head.contains("Connection: close"), "{head}");
        assert_eq!(body, &pattern(10000)[..], "{d}");
        // and the origin saw an HTTP/1.1 request with a Host
        let rec = origin.records().pop().unwrap();
        assert!(
            rec.head
                .starts_with("GET /chunked/10000 HTTP/1.1\r\nHost: "),
            "{}",
            rec.head
        );
    }
}

#[test]
fn expect_100_continue_is_answered_by_the_gateway() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all(origin.addr, "")) else {
            continue;
        };
        use std::io::{Read, Write};
        let mut s = g.connect();
        s.write_all(
            b"PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"HTTP/1.1 100 Continue\r\n\r\n", "{d}");
        s.write_all(b"hello").unwrap();
        let mut pending = Vec::new();
        let r = support::read_response(&mut s, &mut pending, false);
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hello");
        let rec = origin.records().pop().unwrap();
        assert_eq!(
            rec.header("expect"),
            None,
            "the expectation is not forwarded"
        );
    }
}

/// A chunked response's trailer section reaches a client that said `TE: trailers` (gRPC's
/// status travels there), and no other.
#[test]
fn trailers_pass_on_to_a_client_that_takes_them() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all(origin.addr, "")) else {
            continue;
        };
        let ask = |te: &str| {
            let req =
                format!("GET /chunked/10 HTTP/1.1\r\nHost: a\r\n{te}Connection: close\r\n\r\n");
            String::from_utf8_lossy(&support::raw(g.addr, req.as_bytes())).into_owned()
        };
        let with = ask("TE: trailers\r\nConnection: TE\r\n");
        assert!(
            with.ends_with("\r\n0\r\nX-Trailer: t\r\n\r\n"),
            "{d}: {with}"
        );
        let without = ask("");
        assert!(without.ends_with("\r\n0\r\n\r\n"), "{d}: {without}");
    }
}
