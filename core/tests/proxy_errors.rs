//! A dead or misbehaving upstream: refused, reset, closed mid-response, garbage, too slow.
//! Each ends in the right status (or a closed connection once the body started), never a hang.
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

use support::origin::{Origin, closed_port};
use support::{DRIVERS, Gateway, raw, request, route_all};

fn problem_status(out: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(out).to_string();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[test]
fn refused_upstream_is_502_with_problem_json() {
    let dead = closed_port();
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all(dead, "")) else {
            continue;
        };
        let r = request(g.addr, "GET", "/", "", b"");
        assert_eq!(r.status, 502, "{d}");
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            body.contains("\"status\":502") && !body.contains(&dead.to_string()),
            "no internal detail: {body}"
        );
    }
}

#[test]
fn reset_hangup_and_garbage_are_502() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all(origin.addr, "")) else {
            continue;
        };
        for path in ["/reset", "/hangup", "/garbage", "/gzip-te", "/interim"] {
            let r = request(g.addr, "GET", path, "", b"");
            assert_eq!(r.status, 502, "{d} {path}");
        }
    }
}

#[test]
fn close_mid_response_closes_the_client_connection() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all(origin.addr, "")) else {
            continue;
        };
        let out = raw(g.addr, b"GET /close-mid HTTP/1.1\r\nHost: t\r\n\r\n");
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\n") && text.contains("Content-Length: 100000"),
            "{text}"
        );
        assert!(
            text.ends_with("0123456789"),
            "{d}: the body stops where the upstream stopped, then the connection closes"
        );
    }
}

#[test]
fn slow_upstream_is_504_at_the_configured_timeout() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some(g) = Gateway::start(
            d,
            "shards = 1",
            &route_all(origin.addr, "response_timeout = \"300ms\""),
        ) else {
            continue;
        };
        let start = Instant::now();
        let out = raw(
            g.addr,
            b"GET /slow/3000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        );
        let (status, text) = problem_status(&out);
        assert_eq!(status, 504, "{d}: {text}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "answered before the upstream did"
        );
        assert!(text.contains("application/problem+json"));
    }
}

#[test]
fn connect_timeout_is_504() {
    // A listener whose backlog is full never completes new handshakes.
    let l = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    l.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            fillers.push(s);
        }
    }
    for d in DRIVERS {
        let Some(g) = Gateway::start(
            d,
            "shards = 1",
            &route_all(addr, "connect_timeout = \"200ms\""),
        ) else {
            continue;
        };
        let r = request(g.addr, "GET", "/", "", b"");
        assert!(r.status == 504 || r.status == 502, "{d}: {}", r.status);
    }
}

#[test]
fn connections_over_max_connections_get_503() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some(g) = Gateway::start(
            d,
            "shards = 1\nmax_connections = 2",
            &route_all(origin.addr, ""),
        ) else {
            continue;
        };
        use std::io::Write;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = g.connect();
            s.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            let mut p = Vec::new();
            assert_eq!(support::read_response(&mut s, &mut p, false).status, 200);
            held.push(s);
        }
        let out = raw(g.addr, b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
        let (status, text) = problem_status(&out);
        assert_eq!(status, 503, "{d}: {text}");
        assert!(text.contains("Retry-After: 1"));
        drop(held);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            request(g.addr, "GET", "/x", "", b"").status,
            200,
            "{d}: room again once they closed"
        );
    }
}

#[test]
fn an_upstream_answer_before_the_body_ends_is_relayed_not_lost() {
    use std::io::{Read, Write};
    let origin = Origin::start();
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all(origin.addr, "")) else {
            continue;
        };
        for framing in ["Content-Length: 16777216", "Transfer-Encoding: chunked"] {
            let mut s = std::net::TcpStream::connect(g.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let head = format!("POST /early-413 HTTP/1.1\r\nHost: t\r\n{framing}\r\n\r\n");
            s.write_all(head.as_bytes()).unwrap();
            let mut w = s.try_clone().unwrap();
            let chunked = framing.starts_with("Transfer");
            // keep sending a 16 MiB body; the gateway stops reading it once the answer came
            let writer = std::thread::spawn(move || {
                let block = vec![b'x'; 64 * 1024];
                for _ in 0..256 {
                    let r = if chunked {
                        w.write_all(b"10000\r\n")
                            .and_then(|()| w.write_all(&block))
                            .and_then(|()| w.write_all(b"\r\n"))
                    } else {
                        w.write_all(&block)
                    };
                    if r.is_err() {
                        return;
                    }
                }
            });
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end && !out.windows(9).any(|w| w == b"too large") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&out);
            assert!(text.starts_with("HTTP/1.1 413"), "{d} {framing}: {text}");
            assert!(
                text.contains("X-Origin: early") && text.contains("Connection: close"),
                "{text}"
            );
            drop(s);
            writer.join().unwrap();
        }
    }
}
