//! CONNECT: refused (501) unless a route tunnels it; such a route tunnels to its own upstream
//! (not the authority the client names), bytes sent right after the head included; a CONNECT
//! with a body is 400; a dead upstream is 502.
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
use std::net::{SocketAddr, TcpListener, TcpStream};

use support::inproc::InProcess;
use support::origin::closed_port;
use support::{DEADLINE, DRIVERS, route_all};

/// A TCP echo server.
fn echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn send(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(bytes).unwrap();
    s
}

fn head(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap() == 1 {
        buf.push(b[0]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

const CONNECT: &[u8] = b"CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n";

#[test]
fn a_connect_route_tunnels_to_its_upstream() {
    for driver in DRIVERS {
        let target = echo();
        let text = route_all(target, "").replace(
            "upstream = \"origin\"\n",
            "upstream = \"origin\"\nconnect = true\n",
        );
        let Some(g) = InProcess::start(driver, "", &text) else {
            continue;
        };
        // the first tunnel bytes come with the head
        let mut bytes = CONNECT.to_vec();
        bytes.extend_from_slice(b"early ");
        let mut s = send(g.addr, &bytes);
        let h = head(&mut s);
        assert!(h.starts_with("HTTP/1.1 200 "), "{driver}: {h}");
        s.write_all(b"and late").unwrap();
        let mut got = vec![0u8; 14];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, b"early and late", "{driver}");
        drop(s);
        // a CONNECT with a body is refused
        let mut s = send(
            g.addr,
            b"CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\nContent-Length: 3\r\n\r\nabc",
        );
        assert!(head(&mut s).starts_with("HTTP/1.1 400 "), "{driver}");
    }
}

#[test]
fn connect_is_refused_without_a_route_for_it_and_a_dead_upstream_is_502() {
    for driver in DRIVERS {
        let Some(g) = InProcess::start(driver, "", &route_all(echo(), "")) else {
            continue;
        };
        let mut s = send(g.addr, CONNECT);
        assert!(head(&mut s).starts_with("HTTP/1.1 501 "), "{driver}");
        drop(g);
        let text = route_all(closed_port(), "").replace(
            "upstream = \"origin\"\n",
            "upstream = \"origin\"\nconnect = true\n",
        );
        let Some(g) = InProcess::start(driver, "", &text) else {
            continue;
        };
        let mut s = send(g.addr, CONNECT);
        let h = head(&mut s);
        assert!(h.starts_with("HTTP/1.1 502 "), "{driver}: {h}");
    }
}
