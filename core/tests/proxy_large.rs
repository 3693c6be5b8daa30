//! A large body streams through in both directions with memory that does not grow with it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use std::io::{Read, Write};

use support::origin::Origin;
use support::{DRIVERS, Gateway, route_all};

const LARGE: u64 = 256 << 20;
/// RSS growth allowed while a 256 MiB body passes (buffers are bounded per connection).
const RSS_SLACK_KIB: u64 = 24 * 1024;

/// A one-shard gateway that has served one small exchange (so lazily allocated buffers exist),
/// and its RSS then.
fn start_warm(driver: &str, origin: &Origin) -> Option<(Gateway, u64)> {
    let g = Gateway::start(driver, "shards = 1", &route_all(origin.addr, ""))?;
    assert_eq!(
        support::request(g.addr, "GET", "/size/10", "", b"").status,
        200
    );
    let before = g.rss_kib();
    Some((g, before))
}

#[test]
fn large_upload_and_download_stream_with_bounded_memory() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some((g, before)) = start_warm(d, &origin) else {
            continue;
        };

        // upload, Content-Length
        origin.reset_counts();
        let mut s = g.connect();
        s.write_all(format!("PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: {LARGE}\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
        let block: Vec<u8> = vec![7u8; 1 << 20];
        let mut peak = before;
        for i in 0..(LARGE >> 20) {
            s.write_all(&block).unwrap();
            if i.is_multiple_of(32) {
                peak = peak.max(g.rss_kib());
            }
        }
        let mut p = Vec::new();
        let r = support::read_response(&mut s, &mut p, false);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-body-len"), Some(LARGE.to_string().as_str()));
        let rec = origin.records().pop().unwrap();
        assert_eq!((rec.body_len, rec.body_sum), (LARGE, 7 * LARGE));

        // download, Content-Length
        let mut s = g.connect();
        s.write_all(
            format!("GET /size/{LARGE} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        let mut n_reads = 0u64;
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n as u64;
            n_reads += 1;
            if n_reads.is_multiple_of(64) {
                peak = peak.max(g.rss_kib());
            }
        }
        assert!(total > LARGE, "{d}: head + {LARGE} body bytes, got {total}");
        assert!(
            peak < before + RSS_SLACK_KIB,
            "{d}: RSS grew from {before} KiB to {peak} KiB while streaming {LARGE} bytes"
        );
    }
}

#[test]
fn idle_keep_alive_connections_hold_small_buffers() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some((g, before)) = start_warm(d, &origin) else {
            continue;
        };
        let mut conns = Vec::new();
        for _ in 0..300 {
            let mut s = g.connect();
            s.write_all(b"GET /size/100 HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            let mut p = Vec::new();
            assert_eq!(support::read_response(&mut s, &mut p, false).status, 200);
            conns.push(s);
        }
        let grown = g.rss_kib().saturating_sub(before);
        // 32 KiB client + 32 KiB upstream buffers per connection would be ~19 MiB here.
        assert!(
            grown < 300 * 20,
            "{d}: 300 idle connections grew RSS by {grown} KiB"
        );
    }
}

#[test]
fn large_chunked_bodies_stream_with_bounded_memory() {
    const N: u64 = 64 << 20;
    let origin = Origin::start();
    for d in DRIVERS {
        let Some((g, before)) = start_warm(d, &origin) else {
            continue;
        };
        let mut peak = before;
        // upload, chunked (re-encoded by the gateway on its way upstream)
        origin.reset_counts();
        let mut s = g.connect();
        s.write_all(b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").unwrap();
        let chunk = [9u8; 65536];
        for i in 0..(N / 65536) {
            s.write_all(b"10000\r\n").unwrap();
            s.write_all(&chunk).unwrap();
            s.write_all(b"\r\n").unwrap();
            if i % 128 == 0 {
                peak = peak.max(g.rss_kib());
            }
        }
        s.write_all(b"0\r\n\r\n").unwrap();
        let mut p = Vec::new();
        let r = support::read_response(&mut s, &mut p, false);
        assert_eq!(r.header("x-body-len"), Some(N.to_string().as_str()), "{d}");
        let rec = origin.records().pop().unwrap();
        assert_eq!((rec.body_len, rec.body_sum), (N, 9 * N));
        // download, chunked from the origin, re-chunked to the client
        let mut s = g.connect();
        s.write_all(
            format!("GET /chunked/{N} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        let mut reads = 0u64;
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n as u64;
            reads += 1;
            if reads.is_multiple_of(64) {
                peak = peak.max(g.rss_kib());
            }
        }
        assert!(total > N, "{d}: {total}");
        assert!(
            peak < before + RSS_SLACK_KIB,
            "{d}: RSS grew from {before} KiB to {peak} KiB"
        );
    }
}
