//! Keep-alive on both sides: pipelined requests answered in order, upstream connections
//! reused, and a stale pooled connection never loses an idempotent request.
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

use support::origin::Origin;
use support::{DRIVERS, Gateway, read_response, route_all};

#[test]
fn pipelined_requests_are_answered_in_order() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all(origin.addr, "")) else {
            continue;
        };
        let mut s = g.connect();
        let mut all = Vec::new();
        for i in 0..20 {
            all.extend_from_slice(
                format!(
                    "POST /p{i} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\nbody-{i}",
                    format!("body-{i}").len()
                )
                .as_bytes(),
            );
        }
        s.write_all(&all).unwrap();
        let mut p = Vec::new();
        for i in 0..20 {
            let r = read_response(&mut s, &mut p, false);
            assert_eq!(r.status, 200);
            assert_eq!(
                r.body,
                format!("body-{i}").as_bytes(),
                "{d}: response {i} out of order"
            );
        }
    }
}

#[test]
fn upstream_connections_are_reused() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all(origin.addr, "")) else {
            continue;
        };
        origin.reset_counts();
        for _ in 0..3 {
            let mut s = g.connect();
            for _ in 0..10 {
                s.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
                let mut p = Vec::new();
                assert_eq!(read_response(&mut s, &mut p, false).status, 200);
            }
        }
        assert_eq!(origin.records().len(), 30);
        assert_eq!(
            origin.accepts(),
            1,
            "{d}: 30 sequential requests should share one upstream connection"
        );
    }
}

#[test]
fn stale_pooled_connection_never_loses_an_idempotent_request() {
    let origin = Origin::start();
    origin.close_after_response(true);
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all(origin.addr, "")) else {
            continue;
        };
        origin.reset_counts();
        let mut s = g.connect();
        for i in 0..10 {
            s.write_all(format!("GET /s{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
                .unwrap();
            let mut p = Vec::new();
            let r = read_response(&mut s, &mut p, false);
            assert_eq!(
                r.status, 200,
                "{d}: request {i} was lost on a stale connection"
            );
            // let the origin close the pooled connection before the next request
            std::thread::sleep(std::time::Duration::from_millis(60));
        }
        assert_eq!(origin.records().len(), 10);
        // A POST (not replayable after a stale write) must not be sent on a dead connection.
        s.write_all(b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
            .unwrap();
        let mut p = Vec::new();
        let r = read_response(&mut s, &mut p, false);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hi"[..]), "{d}");
    }
    origin.close_after_response(false);
}

#[test]
fn a_pooled_connection_that_dies_on_use_is_retried_on_a_fresh_one() {
    let origin = Origin::start();
    origin.hangup_on_second(true);
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all(origin.addr, "")) else {
            continue;
        };
        origin.reset_counts();
        let mut s = g.connect();
        for i in 0..6 {
            s.write_all(format!("GET /r{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
                .unwrap();
            let mut p = Vec::new();
            assert_eq!(
                read_response(&mut s, &mut p, false).status,
                200,
                "{d}: request {i} was lost"
            );
        }
        // every reuse met a hang-up and was replayed on a new connection
        assert_eq!(origin.records().len(), 6);
        assert!(origin.accepts() >= 6, "{d}: {} accepts", origin.accepts());
    }
    origin.hangup_on_second(false);
}

#[test]
fn stray_bytes_on_a_pooled_connection_never_answer_the_next_request() {
    let origin = Origin::start();
    origin.stray_after_response(true);
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all(origin.addr, "")) else {
            continue;
        };
        let mut s = g.connect();
        for i in 0..5 {
            s.write_all(format!("GET /s{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
                .unwrap();
            let mut p = Vec::new();
            let r = read_response(&mut s, &mut p, false);
            assert_eq!(r.status, 200, "{d}: request {i} got the stray answer");
            std::thread::sleep(std::time::Duration::from_millis(60));
        }
    }
    origin.stray_after_response(false);
}

#[test]
fn a_head_trickled_byte_by_byte_is_parsed_once_complete() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all(origin.addr, "")) else {
            continue;
        };
        let mut s = g.connect();
        let pad = "x".repeat(1500);
        let req = format!("GET /trickle HTTP/1.1\r\nHost: t\r\nX-Pad: {pad}\r\nX-Last: 1\r\n\r\n");
        for b in req.as_bytes().chunks(7) {
            s.write_all(b).unwrap();
        }
        let mut p = Vec::new();
        assert_eq!(read_response(&mut s, &mut p, false).status, 200, "{d}");
        let rec = origin.records().pop().unwrap();
        assert_eq!(rec.header("x-last").as_deref(), Some("1"));
    }
}
