//! TLS records of every size through both sides of the gateway: uploads from clients that
//! send small records (many per read, so rustls holds more plaintext than it takes at once)
//! and downloads from a TLS origin doing the same arrive whole; a handshake message larger
//! than rustls accepts ends that connection and the shard serves on; an answer cut short is
//! not ended with close_notify, and a client that stops reading does not hold its connection
//! past the write timeout.
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
use std::sync::Arc;
use std::time::Duration;

use rustls::version::{TLS12, TLS13};
use support::inproc::InProcess;
use support::origin::Origin;
use support::tls::{self, Ca};
use support::tls_origin::{Options, TlsOrigin};
use support::{DRIVERS, TempDir};

const FRAGMENTS: [usize; 6] = [512, 1000, 1200, 1400, 4096, 16384];

/// What every test here starts from: a CA, the gateway's certificate for `gw.test` and the CA
/// written into `dir`, a plain origin, and a TLS 1.3 client trusting the CA.
struct World {
    ca: Ca,
    dir: TempDir,
    plain: Origin,
    config: Arc<rustls::ClientConfig>,
}

impl World {
    fn new() -> World {
        let ca = Ca::new("records CA");
        let dir = TempDir::new();
        ca.issue("gw", &["gw.test"], false).write(&dir.0, "gw");
        std::fs::write(dir.0.join("ca.pem"), ca.pem()).unwrap();
        let config = tls::client_config(&ca, &[&TLS13], None);
        World {
            ca,
            dir,
            plain: Origin::start(),
            config,
        }
    }
}

/// A gateway with a TLS listener, `/down` to a TLS origin and the rest to a plain one;
/// `server` adds to `[server]`.
fn gateway(
    driver: &str,
    dir: &TempDir,
    plain: std::net::SocketAddr,
    secure: std::net::SocketAddr,
    server: &str,
) -> Option<InProcess> {
    let d = dir.0.display();
    InProcess::start_text(&format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
driver = "{driver}"
pin = false
shards = 1
{server}

[[listener]]
address = "127.0.0.1:0"
[listener.tls]
certificates = [{{ cert = "{d}/gw.pem", key = "{d}/gw.key" }}]

[[upstream]]
name = "plain"
targets = ["{plain}"]
[[upstream]]
name = "secure"
targets = ["{secure}"]
[upstream.tls]
ca = "{d}/ca.pem"
server_name = "origin.test"

[[route]]
path = "/{{*rest}}"
upstream = "plain"
[[route]]
path = "/down"
upstream = "secure"
"#
    ))
}

#[test]
fn bodies_in_records_of_any_size_arrive_whole() {
    let World { ca, dir, plain, .. } = World::new();
    let origin_cert = ca.issue("origin", &["origin.test"], false);
    const UP: usize = 300 * 1024;
    const DOWN: usize = 1024 * 1024;
    let upload: String = (0..UP).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let want_sum: u64 = upload.bytes().map(u64::from).sum();
    for driver in DRIVERS {
        for fragment in FRAGMENTS {
            let secure = TlsOrigin::start(
                &origin_cert,
                Options {
                    body_size: Some(DOWN),
                    fragment: Some(fragment),
                    ..Options::default()
                },
            );
            let Some(g) = gateway(driver, &dir, plain.addr, secure.addr, "") else {
                continue;
            };
            let addr = g.addrs[1];
            for version in [&TLS13, &TLS12] {
                let mut config = (*tls::client_config(&ca, &[version], None)).clone();
                config.max_fragment_size = Some(fragment);
                let config = Arc::new(config);
                plain.reset_counts();
                let mut s = tls::connect(addr, "gw.test", &config).unwrap();
                let answer = tls::exchange(
                    &mut s,
                    &format!(
                        "POST /up HTTP/1.1\r\nHost: gw.test\r\nContent-Length: {UP}\r\nConnection: close\r\n\r\n{upload}"
                    ),
                )
                .unwrap();
                let what = format!("{driver} {version:?} records of {fragment}");
                assert_eq!(tls::status(&answer), 200, "{what}: {answer}");
                let seen = plain.records();
                assert_eq!(seen.len(), 1, "{what}");
                assert_eq!(seen[0].body_len, UP as u64, "{what}");
                assert_eq!(seen[0].body_sum, want_sum, "{what}");

                let answer = tls::get(addr, "gw.test", &config, "/down").unwrap();
                assert_eq!(tls::status(&answer), 200, "{what}");
                let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
                assert_eq!(body.len(), DOWN, "{what}");
                assert!(body.starts_with("abcdefghijklmnopqrstuvwxyzabc"), "{what}");
            }
        }
    }
}

/// A ClientHello claiming 65,520 bytes, sent as 80 KiB of records: more than rustls buffers
/// for one handshake message. The connection is refused (not spun on), and the shard answers
/// the next client.
#[test]
fn an_oversized_handshake_message_ends_only_its_connection() {
    let World {
        dir, plain, config, ..
    } = World::new();
    for driver in DRIVERS {
        let Some(g) = gateway(driver, &dir, plain.addr, plain.addr, "") else {
            continue;
        };
        let addr = g.addrs[1];
        let mut raw = std::net::TcpStream::connect(addr).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        raw.set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut payload = vec![0u8; 16384];
        payload[..4].copy_from_slice(&[0x01, 0x00, 0xff, 0xf0]);
        for i in 0..5 {
            let mut record = vec![0x16, 0x03, 0x01, 0x40, 0x00];
            if i == 0 {
                record.extend_from_slice(&payload);
            } else {
                record.extend_from_slice(&[0u8; 16384]);
            }
            if raw.write_all(&record).is_err() {
                break;
            }
        }
        let mut rest = Vec::new();
        let closed = match raw.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(
            closed,
            "{driver}: the connection is ended, not left hanging"
        );
        let answer = tls::get(addr, "gw.test", &config, "/up").unwrap();
        assert_eq!(tls::status(&answer), 200, "{driver}: the shard serves on");
        let failures = g.total().tls_failures;
        assert!(
            failures.iter().map(|(_, n)| n).sum::<u64>() >= 1,
            "{driver}: counted: {failures:?}"
        );
    }
}

/// An HTTP/1.0 client gets a body delimited by the close. When the upstream's body ends, the
/// gateway ends TLS cleanly (close_notify); when the upstream resets mid-body, it closes
/// without one, so the client sees a truncation, never a complete answer.
#[test]
fn a_body_cut_short_is_not_ended_with_close_notify() {
    let World {
        dir, plain, config, ..
    } = World::new();
    for driver in DRIVERS {
        let Some(g) = gateway(driver, &dir, plain.addr, plain.addr, "") else {
            continue;
        };
        for (path, clean) in [("/no-length", true), ("/no-length-reset", false)] {
            let mut s = tls::connect(g.addrs[1], "gw.test", &config).unwrap();
            s.write_all(format!("GET {path} HTTP/1.0\r\nHost: gw.test\r\n\r\n").as_bytes())
                .unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            let end = loop {
                match s.read(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) => break Err(e.kind()),
                }
            };
            let text = String::from_utf8_lossy(&got);
            assert!(text.starts_with("HTTP/1.1 200"), "{driver} {path}: {text}");
            if clean {
                assert_eq!(end, Ok(()), "{driver} {path}: close_notify after the body");
                assert!(text.ends_with("until close"), "{driver}: {text}");
            } else {
                assert_eq!(
                    end,
                    Err(std::io::ErrorKind::UnexpectedEof),
                    "{driver} {path}: no close_notify after a cut body"
                );
            }
        }
    }
}

/// A client asks for 64 MiB over TLS and stops reading: the write times out
/// (`client_body_timeout`), the exchange aborts, and the connection is released — closing
/// does not wait on the full socket to send close_notify.
#[test]
fn a_client_that_stops_reading_is_let_go() {
    let World {
        dir, plain, config, ..
    } = World::new();
    for driver in DRIVERS {
        let Some(g) = gateway(
            driver,
            &dir,
            plain.addr,
            plain.addr,
            "client_body_timeout = \"300ms\"",
        ) else {
            continue;
        };
        let mut s = tls::connect(g.addrs[1], "gw.test", &config).unwrap();
        s.write_all(b"GET /size/67108864 HTTP/1.1\r\nHost: gw.test\r\n\r\n")
            .unwrap();
        let open = || g.total().open;
        assert!(support::eventually(|| open() == 1), "{driver}: served");
        // never read again: the gateway must give up on its own
        assert!(
            support::eventually(|| open() == 0),
            "{driver}: the connection is still open"
        );
        drop(s);
    }
}
