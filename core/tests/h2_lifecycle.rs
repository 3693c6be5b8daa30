//! An HTTP/2 connection's life in the gateway, on real sockets: drain sends GOAWAY and lets
//! the stream in flight finish; an idle connection closes at its keep-alive; streams past
//! `max_concurrent_streams` are refused; a stream the client resets mid-answer ends its
//! exchange (one `on_finish`) while the connection goes on.
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

use support::h2::{self as raw, Raw, Seen};
use support::{DRIVERS, eventually};

#[test]
fn drain_sends_goaway_and_the_stream_in_flight_finishes() {
    for driver in DRIVERS {
        let Some((g, origin)) = raw::h2c_gateway(driver, "", "") else {
            continue;
        };
        let addr = g.addrs[1];
        let rt = raw::runtime();
        rt.block_on(async {
            let client = raw::connect(addr).await;
            let slow = tokio::spawn({
                let client = client.clone();
                async move { raw::call(&client, raw::get("t", "/slow/400"), None).await }
            });
            // the stream is in flight once the origin holds it
            let t0 = Instant::now();
            while origin.accepts() == 0 && t0.elapsed() < Duration::from_secs(5) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            g.begin_drain();
            let a = slow.await.unwrap().unwrap();
            assert_eq!(a.status, 200, "{driver}: the stream in flight finished");
            // GOAWAY came: no new stream is accepted on this connection
            let next = raw::call(&client, raw::get("t", "/size/1"), None).await;
            assert!(next.is_err(), "{driver}: {next:?}");
        });
    }
}

#[test]
fn an_idle_connection_closes_at_its_keepalive() {
    for driver in DRIVERS {
        let Some((g, _origin)) = raw::h2c_gateway(driver, "keepalive_timeout = \"300ms\"", "")
        else {
            continue;
        };
        let c = Raw::open(g.addrs[1], &raw::preface(&[]));
        let t0 = Instant::now();
        let got = c.next_not_headers(Duration::from_secs(10));
        assert_eq!(got, Some(Seen::Closed), "{driver}");
        assert!(
            t0.elapsed() >= Duration::from_millis(200),
            "{driver}: not before its time"
        );
    }
}

#[test]
fn streams_past_the_limit_are_refused() {
    for driver in DRIVERS {
        let Some((g, _origin)) = raw::h2c_gateway(driver, "", "max_concurrent_streams = 2") else {
            continue;
        };
        let mut c = Raw::open(g.addrs[1], &raw::preface(&[]));
        let flags = raw::END_HEADERS | raw::END_STREAM;
        let block = raw::get_block("t", "/slow/300");
        let mut burst = Vec::new();
        for id in [1, 3, 5] {
            burst.extend(raw::frame(raw::HEADERS, flags, id, &block));
        }
        assert!(c.send(&burst));
        let got = c.next_not_headers(Duration::from_secs(10));
        // REFUSED_STREAM (0x7): the client may retry it
        assert_eq!(got, Some(Seen::Reset(5, 0x7)), "{driver}");
    }
}

#[test]
fn a_stream_reset_mid_answer_ends_its_exchange_and_the_connection_goes_on() {
    for driver in DRIVERS {
        let Some((g, _origin)) = raw::h2c_gateway(driver, "", "") else {
            continue;
        };
        let addr = g.addrs[1];
        // the connection's window wide open: what stream 1 takes leaves room for stream 3
        let mut first = raw::preface(&[]);
        first.extend(raw::frame(0x8, 0, 0, &(1u32 << 30).to_be_bytes()));
        let mut c = Raw::open(addr, &first);
        let flags = raw::END_HEADERS | raw::END_STREAM;
        // 50 MB the client never reads past its first window, then it resets the stream
        let block = raw::get_block("t", "/size/50000000");
        assert!(c.send(&raw::frame(raw::HEADERS, flags, 1, &block)));
        assert_eq!(
            c.seen.recv_timeout(Duration::from_secs(10)),
            Ok(Seen::Headers(1))
        );
        assert!(c.send(&raw::frame(
            raw::RST_STREAM,
            0,
            1,
            &raw::CANCEL.to_be_bytes()
        )));
        // the same connection serves the next stream
        let block = raw::get_block("t", "/size/10");
        assert!(c.send(&raw::frame(raw::HEADERS, flags, 3, &block)));
        assert_eq!(
            c.seen.recv_timeout(Duration::from_secs(10)),
            Ok(Seen::Headers(3))
        );
        assert!(
            eventually(|| g.total().finished == 2),
            "{driver}: {:?}",
            g.total()
        );
        let t = g.total();
        assert_eq!(t.requests, 2, "{driver}");
        assert_eq!(t.outcomes[4], 1, "{driver}: the reset one was aborted");
    }
}
