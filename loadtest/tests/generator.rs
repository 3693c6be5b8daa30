//! The generator against real sockets: the built-in origin as a child process (so it can be
//! stalled with SIGSTOP without stopping the generator), and small raw-socket servers for the
//! response framings the origin does not produce.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use loadtest::generator::{self, Plan};

/// The built-in origin, killed on drop.
struct Origin {
    child: Child,
    addr: SocketAddr,
}

impl Origin {
    fn start(extra: &[&str]) -> Origin {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let child = Command::new(env!("CARGO_BIN_EXE_loadtest"))
            .args(["origin", "--listen", &addr.to_string()])
            .args(extra)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "origin did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Origin { child, addr }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn plan(addr: SocketAddr) -> Plan {
    let mut p = Plan::new(addr);
    p.warmup = Duration::from_millis(300);
    p.duration = Duration::from_secs(2);
    p.connections = 8;
    p
}

#[test]
fn open_loop_latency_is_the_origins_delay() {
    let origin = Origin::start(&["--latency-ms", "10"]);
    let mut p = plan(origin.addr);
    p.connections = 20; // 20 connections × 100/s each ≫ 200/s
    p.rate = Some(200.0);
    let r = generator::run(&p).unwrap();
    let s = r.summary();
    assert_eq!(s.error_total, 0, "{s:?}");
    // 2 s at 200/s: every slot of the timetable was used
    assert!((390..=410).contains(&s.responses), "{s:?}");
    // at least the 10 ms the origin waits; monoio's 1 ms timer ticks (origin and generator)
    // and a busy machine add a little
    assert!(s.latency_ms.p50 >= 10.0 && s.latency_ms.p50 < 14.0, "{s:?}");
}

#[test]
fn a_stall_is_charged_to_every_request_scheduled_during_it() {
    let origin = Origin::start(&[]);
    let mut p = plan(origin.addr);
    p.connections = 10;
    p.rate = Some(200.0);
    p.duration = Duration::from_secs(3);
    let start = Instant::now() + Duration::from_millis(50);
    // stop the origin for 500 ms, 1.5 s into the measured window: 100 requests are due then
    let stall_at = start + p.warmup + Duration::from_millis(1500);
    let stall = Duration::from_millis(500);
    let pid = origin.child.id().to_string();
    let staller = std::thread::spawn(move || {
        std::thread::sleep(stall_at.saturating_duration_since(Instant::now()));
        Command::new("kill").args(["-STOP", &pid]).status().unwrap();
        std::thread::sleep(stall);
        Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    });
    let r = generator::run_at(&p, start).unwrap();
    staller.join().unwrap();
    let s = r.summary();
    assert_eq!(s.error_total, 0, "{s:?}");
    // nothing dropped: the whole timetable was served, late
    assert!((590..=610).contains(&s.responses), "{s:?}");
    // requests due during the stall waited for its end: the 50 due in its first half waited
    // 250 ms or more. Measuring from the actual send (coordinated omission) would show only
    // the 10 requests in flight when it began.
    let waited = r.latency_us.count_between(250_000, 10_000_000);
    assert!(
        (40..=60).contains(&waited),
        "{waited} requests ≥ 250 ms; {s:?}"
    );
    assert!(s.latency_ms.max >= 450.0, "{s:?}");
    assert!(s.latency_ms.p50 < 5.0, "{s:?}");
}

#[test]
fn closed_loop_counts_statuses_and_connect_errors() {
    let origin = Origin::start(&["--status", "503"]);
    let mut p = plan(origin.addr);
    p.duration = Duration::from_millis(500);
    let s = generator::run(&p).unwrap().summary();
    assert!(s.responses > 100, "{s:?}");
    assert_eq!(s.errors.status.get(&503), Some(&s.responses), "{s:?}");

    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut p = plan(closed); // the listener is dropped: connections are refused
    p.duration = Duration::from_millis(300);
    p.warmup = Duration::ZERO;
    let s = generator::run(&p).unwrap().summary();
    assert_eq!(s.responses, 0);
    assert!(s.errors.connect > 0, "{s:?}");
}

#[test]
fn a_late_response_is_a_timeout() {
    let origin = Origin::start(&["--latency-ms", "400"]);
    let mut p = plan(origin.addr);
    p.connections = 2;
    p.warmup = Duration::ZERO;
    p.duration = Duration::from_millis(500);
    p.timeout = Duration::from_millis(100);
    let s = generator::run(&p).unwrap().summary();
    assert_eq!(s.responses, 0, "{s:?}");
    assert!(s.errors.timeout >= 2, "{s:?}");
}

/// Serves `response` to every request head on each connection, closing after each when
/// `close` is set.
fn raw_server(response: &'static [u8], close: bool) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if s.write_all(response).is_err() || close {
                            return;
                        }
                    }
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn chunked_and_close_delimited_bodies_are_read_whole() {
    let cases: [(&'static [u8], bool, u64); 2] = [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n",
            false,
            50,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close",
            true,
            20,
        ),
    ];
    for (response, close, at_least) in cases {
        let mut p = plan(raw_server(response, close));
        p.duration = Duration::from_millis(300);
        let s = generator::run(&p).unwrap().summary();
        assert!(s.responses > at_least, "{s:?}");
        assert_eq!(s.error_total, 0, "{s:?}");
        assert_eq!(s.body_bytes, 11 * s.responses, "{s:?}");
    }
}

#[test]
fn uploads_and_no_keepalive_reach_the_origin() {
    let origin = Origin::start(&["--size", "10"]);
    let mut p = plan(origin.addr);
    p.duration = Duration::from_millis(500);
    p.keepalive = false;
    p.connections = 4;
    p.requests[0].method = "POST".into();
    p.requests[0].body = vec![b'x'; 256 * 1024];
    let s = generator::run(&p).unwrap().summary();
    assert!(s.responses > 10, "{s:?}");
    assert_eq!(s.error_total, 0, "{s:?}");
    assert_eq!(s.body_bytes, 10 * s.responses);
}

/// Issue 9: `loadtest run … | head` with a reader that closed the pipe: the table is dropped
/// quietly (no panic) and the run ends normally; `--help` too.
#[test]
fn issue_9_a_closed_stdout_does_not_panic() {
    let origin = Origin::start(&[]);
    let url = format!("http://{}/", origin.addr);
    for args in [
        vec!["run", url.as_str(), "-c", "2", "-d", "0.3", "--warmup", "0"],
        vec!["--help"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
            .args(&args)
            .stdout(writer)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}
