//! Idle keep-alive connections park (no buffers held) and come back: the next request on a
//! parked connection is served, a request that races the end of the hold is never lost, and
//! the keep-alive timeout still closes a parked connection.
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
use std::net::TcpStream;
use std::time::Duration;

use support::inproc::InProcess;
use support::origin::Origin;
use support::{DRIVERS, eventually, read_response, route_all};

fn get(s: &mut TcpStream, path: &str) -> u16 {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let mut pending = Vec::new();
    read_response(s, &mut pending, false).status
}

#[test]
fn a_parked_connection_serves_its_next_request() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some(g) = InProcess::start(d, "shards = 1", &route_all(origin.addr, "")) else {
            continue;
        };
        let mut s = TcpStream::connect(g.addr).unwrap();
        assert_eq!(get(&mut s, "/first"), 200, "{d}");
        assert!(
            eventually(|| g.total().parked == 1),
            "{d}: the idle connection parks"
        );
        assert_eq!(get(&mut s, "/second"), 200, "{d}: served after parking");
        assert_eq!(get(&mut s, "/third"), 200, "{d}");
        let t = g.total();
        assert_eq!(t.open, 1, "{d}: still one connection");
        assert!(eventually(|| g.total().parked == 1), "{d}: it parks again");
        // a pipelined pair after parking: both answered, in order
        s.write_all(b"GET /p1 HTTP/1.1\r\nHost: t\r\n\r\nGET /p2 HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut pending = Vec::new();
        assert_eq!(read_response(&mut s, &mut pending, false).status, 200);
        assert_eq!(read_response(&mut s, &mut pending, false).status, 200);
        let paths: Vec<String> = origin.records().iter().map(|r| r.target.clone()).collect();
        assert!(
            paths.ends_with(&["/p1".to_string(), "/p2".to_string()]),
            "{d}: {paths:?}"
        );
    }
}

#[test]
fn requests_that_race_the_end_of_the_hold_are_never_lost() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some(g) = InProcess::start(d, "shards = 1", &route_all(origin.addr, "")) else {
            continue;
        };
        origin.reset_counts();
        // gaps around the 100 ms hold, so some requests arrive as their read is cancelled
        let clients: Vec<_> = (0..8u64)
            .map(|c| {
                let addr = g.addr;
                std::thread::spawn(move || {
                    let mut s = TcpStream::connect(addr).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    for i in 0..8u64 {
                        std::thread::sleep(Duration::from_millis(94 + (c * 3 + i * 5) % 13));
                        assert_eq!(get(&mut s, &format!("/c{c}/r{i}")), 200);
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().expect("every request answered");
        }
        assert_eq!(
            origin.records().len(),
            64,
            "{d}: each request reached the origin once"
        );
    }
}

#[test]
fn a_parked_connection_closes_when_its_keep_alive_ends() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some(g) = InProcess::start(
            d,
            "shards = 1\nkeepalive_timeout = \"400ms\"",
            &route_all(origin.addr, ""),
        ) else {
            continue;
        };
        let mut s = TcpStream::connect(g.addr).unwrap();
        assert_eq!(get(&mut s, "/once"), 200, "{d}");
        assert!(eventually(|| g.total().parked == 1), "{d}: parks");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut byte = [0u8; 1];
        assert_eq!(
            s.read(&mut byte).unwrap(),
            0,
            "{d}: the gateway closes the idle connection"
        );
        assert!(eventually(|| g.total().open == 0), "{d}: and forgets it");
    }
}
