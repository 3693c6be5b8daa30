//! WebSocket through the gateway: the upgrade goes upstream, the 101 comes back with the
//! accept key, then messages (up to 1 MiB), a ping and the close handshake pass both ways;
//! a route that does not allow upgrades drops the Upgrade field; the tunnel is counted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::Duration;

use support::inproc::InProcess;
use support::ws::{EchoOrigin, accept, handshake, handshake_at, read_frame, write_frame};
use support::{DEADLINE, DRIVERS, eventually, pattern, route_all};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// An echo origin, a gateway in front of it (`server` extras), and a client connection.
fn start(driver: &str, server: &str) -> Option<(EchoOrigin, InProcess, TcpStream)> {
    let origin = EchoOrigin::start();
    let g = InProcess::start(driver, server, &route_all(origin.addr, ""))?;
    let s = TcpStream::connect(g.addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    Some((origin, g, s))
}

#[test]
fn a_websocket_echoes_through_the_gateway_and_closes_cleanly() {
    for driver in DRIVERS {
        let Some((origin, g, mut s)) = start(driver, "") else {
            continue;
        };
        let head = handshake(&mut s, KEY);
        assert!(head.starts_with("HTTP/1.1 101 "), "{driver}: {head}");
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("\r\nupgrade: websocket\r\n"), "{head}");
        assert!(lower.contains("\r\nconnection: upgrade\r\n"), "{head}");
        assert!(
            head.contains(&accept(KEY)),
            "{driver}: the accept key passes"
        );
        let mask = Some([1, 2, 3, 4]);
        write_frame(&mut s, 0x1, b"hello", mask).unwrap();
        assert_eq!(read_frame(&mut s), Some((0x1, b"hello".to_vec())));
        let big = pattern(1 << 20);
        write_frame(&mut s, 0x2, &big, mask).unwrap();
        let (op, echoed) = read_frame(&mut s).unwrap();
        assert_eq!(op, 0x2);
        assert!(
            echoed == big,
            "{driver}: the 1 MiB message comes back whole"
        );
        write_frame(&mut s, 0x9, b"ping", mask).unwrap();
        assert_eq!(read_frame(&mut s), Some((0xA, b"ping".to_vec())));
        // close handshake: the origin answers close and hangs up; so does the gateway
        write_frame(&mut s, 0x8, &[0x03, 0xe8], mask).unwrap();
        assert_eq!(read_frame(&mut s), Some((0x8, vec![0x03, 0xe8])));
        let mut rest = [0u8; 16];
        assert_eq!(
            std::io::Read::read(&mut s, &mut rest).unwrap(),
            0,
            "{driver}: EOF after close"
        );
        // the origin's half-close passed on; the client's own ends the tunnel
        drop(s);
        assert!(
            eventually(|| g.total().tunnels == 1),
            "{driver}: the tunnel is counted"
        );
        let t = g.total();
        assert_eq!(
            t.requests, t.finished,
            "{driver}: the exchange finished once"
        );
        assert_eq!(origin.upgrades.load(Ordering::SeqCst), 1);
    }
}

#[test]
fn a_route_without_websocket_drops_the_upgrade() {
    for driver in DRIVERS {
        let origin = EchoOrigin::start();
        let text = route_all(origin.addr, "").replace(
            "upstream = \"origin\"\n\n",
            "upstream = \"origin\"\nwebsocket = false\n\n",
        );
        let text = if text.contains("websocket = false") {
            text
        } else {
            format!("{text}websocket = false\n")
        };
        let Some(g) = InProcess::start(driver, "", &text) else {
            continue;
        };
        let mut s = TcpStream::connect(g.addr).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let head = handshake(&mut s, KEY);
        assert!(head.starts_with("HTTP/1.1 426 "), "{driver}: {head}");
        assert_eq!(origin.upgrades.load(Ordering::SeqCst), 0);
    }
}

#[test]
fn a_silent_tunnel_is_closed_after_its_idle_timeout() {
    for driver in DRIVERS {
        let origin = EchoOrigin::start();
        let Some(g) = InProcess::start(
            driver,
            "tunnel_idle_timeout = \"300ms\"",
            &route_all(origin.addr, ""),
        ) else {
            continue;
        };
        let mut s = TcpStream::connect(g.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(handshake(&mut s, KEY).starts_with("HTTP/1.1 101 "));
        let t0 = std::time::Instant::now();
        let mut rest = [0u8; 16];
        assert_eq!(
            std::io::Read::read(&mut s, &mut rest).unwrap(),
            0,
            "{driver}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "{driver}: {:?}",
            t0.elapsed()
        );
    }
}

#[test]
fn eight_mib_both_ways_at_once_arrive_whole_and_in_order() {
    // the client streams 8 MiB while it reads the echo back; the origin echoes each chunk as it
    // reads it: both directions busy at once, every byte through in order
    for driver in DRIVERS {
        let Some((_origin, _gateway, mut s)) = start(driver, "") else {
            continue;
        };
        assert!(handshake_at(&mut s, "/raw", KEY).starts_with("HTTP/1.1 101 "));
        let data = pattern(8 << 20);
        let mut w = s.try_clone().unwrap();
        let sent = data.clone();
        let writer = std::thread::spawn(move || std::io::Write::write_all(&mut w, &sent).is_ok());
        let mut got = vec![0u8; data.len()];
        std::io::Read::read_exact(&mut s, &mut got).unwrap();
        assert!(writer.join().unwrap(), "{driver}: the upload went through");
        assert!(got == data, "{driver}: every byte came back in order");
    }
}

#[test]
fn only_websocket_is_tunnelled() {
    for driver in DRIVERS {
        let origin = EchoOrigin::start();
        let Some(g) = InProcess::start(driver, "", &route_all(origin.addr, "")) else {
            continue;
        };
        // h2c: the Upgrade is dropped as hop-by-hop, the origin sees a plain GET (426)
        let mut s = TcpStream::connect(g.addr).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        std::io::Write::write_all(
            &mut s,
            b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Key: x\r\n\r\n",
        )
        .unwrap();
        let mut pending = Vec::new();
        let r = support::read_response(&mut s, &mut pending, false);
        assert_eq!(r.status, 426, "{driver}");
        assert_eq!(origin.upgrades.load(Ordering::SeqCst), 0);
    }
}
