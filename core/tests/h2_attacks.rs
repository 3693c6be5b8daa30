//! The published HTTP/2 attacks, each on a raw connection written frame by frame, against a
//! real gateway: rapid reset (CVE-2023-44487), CONTINUATION floods, SETTINGS and PING floods,
//! an HPACK bomb, a zero-window stall and stream-id exhaustion. Each is refused with bounded
//! cost (the connection ends with the right error code, or the stream is reset), and the
//! shard goes on serving another client.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::h2::{self as raw, Raw, Seen};
use support::pattern;

/// A fresh client on the same (one) shard is served: the attack hurt nobody else.
fn still_serves(addr: SocketAddr, driver: &str) {
    let rt = raw::runtime();
    rt.block_on(async {
        let client = raw::connect(addr).await;
        let a = raw::call(&client, raw::get("t", "/size/100"), None)
            .await
            .unwrap();
        assert_eq!((a.status, a.body), (200, pattern(100)), "{driver}");
    });
}

fn each_driver(http2: &str, attack: impl Fn(SocketAddr, &str)) {
    for driver in support::DRIVERS {
        let Some((g, _origin)) = raw::h2c_gateway(driver, "", http2) else {
            continue;
        };
        attack(g.addrs[1], driver);
        still_serves(g.addrs[1], driver);
    }
}

#[test]
fn rapid_reset_ends_the_connection_with_enhance_your_calm() {
    each_driver("", |addr, driver| {
        let mut c = Raw::open(addr, &raw::preface(&[]));
        let block = raw::get_block("t", "/size/10");
        let mut sent = 0;
        'outer: for round in 0..1000u32 {
            let mut burst = Vec::new();
            for i in 0..100 {
                let id = (round * 100 + i) * 2 + 1;
                let flags = raw::END_HEADERS | raw::END_STREAM;
                burst.extend(raw::frame(raw::HEADERS, flags, id, &block));
                burst.extend(raw::frame(raw::RST_STREAM, 0, id, &8u32.to_be_bytes()));
            }
            if !c.send(&burst) {
                break 'outer;
            }
            sent += 100;
        }
        let (code, closed) = c.goaway();
        assert_eq!(
            code,
            Some(raw::ENHANCE_YOUR_CALM),
            "{driver}: after {sent} streams"
        );
        assert!(closed, "{driver}");
        assert!(
            sent < 100_000,
            "{driver}: cut off before the loop ended ({sent})"
        );
    });
}

#[test]
fn ping_and_settings_floods_end_the_connection() {
    for (name, kind) in [("PING", raw::PING), ("SETTINGS", raw::SETTINGS)] {
        each_driver(
            "control_frames_burst = 200\ncontrol_frames_per_s = 10",
            |addr, driver| {
                let mut c = Raw::open(addr, &raw::preface(&[]));
                let payload: &[u8] = if kind == raw::PING { &[7; 8] } else { &[] };
                let one = raw::frame(kind, 0, 0, payload);
                let mut sent = 0;
                for _ in 0..200 {
                    if !c.send(&one.repeat(500)) {
                        break;
                    }
                    sent += 500;
                }
                let (code, closed) = c.goaway();
                assert_eq!(
                    code,
                    Some(raw::ENHANCE_YOUR_CALM),
                    "{driver} {name} ({sent} sent)"
                );
                assert!(closed, "{driver} {name}");
            },
        );
    }
}

#[test]
fn a_continuation_flood_is_cut_off() {
    each_driver("max_header_list = \"16KiB\"", |addr, driver| {
        let mut c = Raw::open(addr, &raw::preface(&[]));
        let block = raw::get_block("t", "/size/10");
        assert!(c.send(&raw::frame(raw::HEADERS, 0, 1, &block)));
        let mut field = Vec::new();
        raw::literal(&mut field, "x-flood", &[b'a'; 1000]);
        let one = raw::frame(raw::CONTINUATION, 0, 1, &field);
        let mut sent = 0usize;
        for _ in 0..10_000 {
            if !c.send(&one) {
                break;
            }
            sent += one.len();
        }
        let (code, closed) = c.goaway();
        assert_eq!(
            code,
            Some(raw::ENHANCE_YOUR_CALM),
            "{driver}: after {sent} bytes"
        );
        assert!(closed, "{driver}: connection ended");
        assert!(
            sent < 10_000 * one.len(),
            "{driver}: cut off early ({sent} bytes)"
        );
    });
}

#[test]
fn empty_continuation_frames_are_a_flood() {
    each_driver(
        "control_frames_burst = 100\ncontrol_frames_per_s = 10",
        |addr, driver| {
            let mut c = Raw::open(addr, &raw::preface(&[]));
            let block = raw::get_block("t", "/size/10");
            assert!(c.send(&raw::frame(raw::HEADERS, 0, 1, &block)));
            let one = raw::frame(raw::CONTINUATION, 0, 1, &[]);
            for _ in 0..100 {
                if !c.send(&one.repeat(100)) {
                    break;
                }
            }
            let (code, closed) = c.goaway();
            assert_eq!(code, Some(raw::ENHANCE_YOUR_CALM), "{driver}");
            assert!(closed, "{driver}");
        },
    );
}

#[test]
fn an_hpack_bomb_is_refused() {
    each_driver("max_header_list = \"16KiB\"", |addr, driver| {
        let mut c = Raw::open(addr, &raw::preface(&[]));
        // one 4 KiB field into the dynamic table, then 1-byte references to it: 4 MiB of
        // header list from a 4 KiB block
        let mut block = raw::get_block("t", "/size/10");
        block.push(0x40); // literal with incremental indexing, new name
        raw::hpack_str(&mut block, b"x-bomb");
        raw::hpack_str(&mut block, &[b'b'; 4000]);
        block.extend(std::iter::repeat_n(0xbe, 1000)); // indexed: dynamic entry 62
        let flags = raw::END_HEADERS | raw::END_STREAM;
        let mut all = Vec::new();
        for piece in block.chunks(16_000).enumerate() {
            let (i, part) = piece;
            let last = (i + 1) * 16_000 >= block.len();
            let kind = if i == 0 {
                raw::HEADERS
            } else {
                raw::CONTINUATION
            };
            let f = match (i, last) {
                (0, true) => flags,
                (0, false) => raw::END_STREAM,
                (_, true) => raw::END_HEADERS,
                _ => 0,
            };
            all.extend(raw::frame(kind, f, 1, part));
        }
        assert!(c.send(&all));
        let got = c.next_not_headers(Duration::from_secs(10));
        assert_eq!(got, Some(Seen::GoAway(raw::ENHANCE_YOUR_CALM)), "{driver}");
    });
}

#[test]
fn a_stream_stalled_on_a_shut_window_is_reset() {
    each_driver("send_timeout = \"300ms\"", |addr, driver| {
        // the client's window is 0: the answer cannot go out
        let mut c = Raw::open(addr, &raw::preface(&[(0x4, 0)]));
        let flags = raw::END_HEADERS | raw::END_STREAM;
        let block = raw::get_block("t", "/size/100000");
        assert!(c.send(&raw::frame(raw::HEADERS, flags, 1, &block)));
        let got = c.next_not_headers(Duration::from_secs(10));
        assert_eq!(got, Some(Seen::Reset(1, raw::CANCEL)), "{driver}");
    });
}

#[test]
fn stream_ids_cannot_go_back_or_past_the_last() {
    each_driver("", |addr, driver| {
        let mut c = Raw::open(addr, &raw::preface(&[]));
        let flags = raw::END_HEADERS | raw::END_STREAM;
        let block = raw::get_block("t", "/size/10");
        // the last stream id a client has, then one below it
        assert!(c.send(&raw::frame(raw::HEADERS, flags, 0x7fff_ffff, &block)));
        assert!(c.send(&raw::frame(raw::HEADERS, flags, 0x7fff_fffd, &block)));
        let (code, closed) = c.goaway();
        assert_eq!(code, Some(raw::PROTOCOL_ERROR), "{driver}");
        assert!(closed, "{driver}");
    });
}
