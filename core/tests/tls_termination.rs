//! TLS on a listener, with certificates made in the test: SNI picks the certificate (exact,
//! wildcard, default, or refuse), TLS 1.2 and 1.3 work and a version below the minimum is
//! refused, a session resumes on another shard, garbage is counted and hurts nobody, the
//! upstream sees `X-Forwarded-Proto: https`, and a plain listener redirects to https.
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
use std::net::SocketAddr;
use std::time::Duration;

use rustls::version::{TLS12, TLS13};
use support::inproc::InProcess;
use support::origin::Origin;
use support::tls::{self, Ca, Issued};
use support::{DRIVERS, TempDir};

/// The certificates of the tests: a default one (also for 127.0.0.1), one exact name and one
/// wildcard, each written into `dir`.
struct Certs {
    ca: Ca,
    default: Issued,
    exact: Issued,
    wild: Issued,
    dir: TempDir,
}

impl Certs {
    fn new() -> Certs {
        let ca = Ca::new("test CA");
        let dir = TempDir::new();
        let default = ca.issue("default", &["default.test", "127.0.0.1"], false);
        let exact = ca.issue("exact", &["a.test"], false);
        let wild = ca.issue("wild", &["*.wild.test"], false);
        default.write(&dir.0, "default");
        exact.write(&dir.0, "exact");
        wild.write(&dir.0, "wild");
        Certs {
            ca,
            default,
            exact,
            wild,
            dir,
        }
    }

    fn list(&self) -> String {
        let d = self.dir.0.display();
        format!(
            "[{{ cert = \"{d}/default.pem\", key = \"{d}/default.key\" }}, {{ cert = \"{d}/exact.pem\", key = \"{d}/exact.key\" }}, {{ cert = \"{d}/wild.pem\", key = \"{d}/wild.key\" }}]"
        )
    }
}

/// A gateway on `driver` with a plain listener, a TLS listener (unknown names get the
/// default), a TLS 1.3-only listener refusing unknown names, and a redirecting listener.
fn gateway(driver: &str, shards: usize, certs: &Certs, origin: SocketAddr) -> Option<InProcess> {
    let list = certs.list();
    InProcess::start_text(&format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
driver = "{driver}"
pin = false
shards = {shards}

[[listener]]
address = "127.0.0.1:0"
[listener.tls]
certificates = {list}

[[listener]]
address = "127.0.0.1:0"
[listener.tls]
certificates = {list}
min_version = "1.3"
unknown_sni = "refuse"

[[listener]]
address = "127.0.0.1:0"
redirect_https = true
https_port = 8443

[[upstream]]
name = "origin"
targets = ["{origin}"]

[[route]]
path = "/{{*rest}}"
upstream = "origin"
"#
    ))
}

/// Which certificate a client naming `sni` (`None`: an IP, so no SNI) is shown, or why the
/// handshake failed.
fn shown(
    addr: SocketAddr,
    sni: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Vec<u8>, String> {
    let (config, seen) = tls::recording_config(versions);
    tls::connect(addr, sni, &config)?;
    let der = seen.lock().unwrap().clone().ok_or("no certificate")?;
    Ok(der.to_vec())
}

#[test]
fn sni_picks_the_certificate_and_versions_are_enforced() {
    let certs = Certs::new();
    let origin = Origin::start();
    for driver in DRIVERS {
        let Some(g) = gateway(driver, 1, &certs, origin.addr) else {
            continue;
        };
        let (tls_any, tls13) = (g.addrs[1], g.addrs[2]);
        let both: &[&'static rustls::SupportedProtocolVersion] = &[&TLS13, &TLS12];
        for (sni, want) in [
            ("a.test", &certs.exact),
            ("x.wild.test", &certs.wild),
            ("A.TEST", &certs.exact),
            // a wildcard covers one label only; unknown names get the default
            ("deep.x.wild.test", &certs.default),
            ("other.test", &certs.default),
            ("127.0.0.1", &certs.default),
        ] {
            assert_eq!(
                shown(tls_any, sni, both).unwrap(),
                want.der.to_vec(),
                "{driver} {sni}"
            );
        }
        // the refusing listener: unknown names fail the handshake, known ones work
        assert!(shown(tls13, "other.test", both).is_err(), "{driver}");
        assert_eq!(
            shown(tls13, "a.test", both).unwrap(),
            certs.exact.der.to_vec()
        );
        // versions: 1.2 and 1.3 both work on the first listener, 1.2 is refused by the second
        for (versions, name) in [(&[&TLS12][..], "TLSv1_2"), (&[&TLS13][..], "TLSv1_3")] {
            let config = tls::client_config(&certs.ca, versions, None);
            let s = tls::connect(tls_any, "a.test", &config).unwrap();
            assert_eq!(format!("{:?}", s.conn.protocol_version().unwrap()), name);
        }
        let config12 = tls::client_config(&certs.ca, &[&TLS12], None);
        assert!(
            tls::connect(tls13, "a.test", &config12).is_err(),
            "{driver}: 1.2 below the minimum"
        );
        let failures = g.total().tls_failures;
        assert!(
            failures.contains(&("unknown_name", 1)),
            "{driver}: {failures:?}"
        );
        assert!(
            failures.contains(&("incompatible", 1)),
            "{driver}: {failures:?}"
        );
    }
}

#[test]
fn requests_over_tls_reach_the_upstream_as_https_and_garbage_is_counted() {
    let certs = Certs::new();
    let origin = Origin::start();
    for driver in DRIVERS {
        let Some(g) = gateway(driver, 1, &certs, origin.addr) else {
            continue;
        };
        let tls_any = g.addrs[1];
        let config = tls::client_config(&certs.ca, &[&TLS13, &TLS12], None);
        origin.reset_counts();
        let answer = tls::get(tls_any, "a.test", &config, "/hello").unwrap();
        assert_eq!(tls::status(&answer), 200, "{driver}: {answer}");
        let seen = origin.records();
        assert_eq!(
            seen[0].header("x-forwarded-proto").as_deref(),
            Some("https"),
            "{driver}"
        );
        // keep-alive over TLS: three requests on one connection
        let mut s = tls::connect(tls_any, "a.test", &config).unwrap();
        for i in 0..3 {
            let close = if i == 2 { "Connection: close\r\n" } else { "" };
            s.write_all(format!("GET /k{i} HTTP/1.1\r\nHost: a.test\r\n{close}\r\n").as_bytes())
                .unwrap();
            let mut pending = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&pending).contains("\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                pending.extend_from_slice(&buf[..n]);
            }
            assert!(pending.starts_with(b"HTTP/1.1 200"), "{driver} request {i}");
        }
        // plain HTTP and garbage to the TLS port: refused, counted, and the shard serves on
        for junk in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"\x16\x03\x01\x00\x05hello",
        ] {
            let mut raw = std::net::TcpStream::connect(tls_any).unwrap();
            raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            raw.write_all(junk).unwrap();
            let mut out = Vec::new();
            let _ = raw.read_to_end(&mut out);
            assert!(
                !String::from_utf8_lossy(&out).contains("HTTP/1.1 200"),
                "{driver}"
            );
        }
        assert_eq!(
            tls::status(&tls::get(tls_any, "a.test", &config, "/after").unwrap()),
            200
        );
        let failures = g.total().tls_failures;
        assert!(
            failures.iter().any(|(r, n)| *r == "not_tls" && *n >= 1),
            "{driver}: {failures:?}"
        );
    }
}

#[test]
fn a_plain_listener_redirects_to_https() {
    let certs = Certs::new();
    let origin = Origin::start();
    for driver in DRIVERS {
        let Some(g) = gateway(driver, 1, &certs, origin.addr) else {
            continue;
        };
        origin.reset_counts();
        let r = support::request(g.addrs[3], "GET", "/a/b?x=1", "", b"");
        assert_eq!(r.status, 308, "{driver}");
        assert_eq!(
            r.header("location"),
            Some("https://test.local:8443/a/b?x=1"),
            "{driver}"
        );
        assert_eq!(r.header("content-length"), Some("0"));
        assert!(origin.records().is_empty(), "{driver}: nothing forwarded");
    }
}

/// A client resumes its session on a shard that never saw its full handshake: tickets are
/// sealed with keys every shard shares (TLS 1.3 and 1.2).
#[test]
fn a_session_resumes_on_another_shard() {
    let certs = Certs::new();
    let origin = Origin::start();
    for driver in DRIVERS {
        for version in [&TLS13, &TLS12] {
            let Some(g) = gateway(driver, 2, &certs, origin.addr) else {
                continue;
            };
            let tls_any = g.addrs[1];
            // one config: its session store carries the tickets from one connection to the next
            let config = tls::client_config(&certs.ca, &[version], None);
            let mut resumed = 0;
            for i in 0..24 {
                let answer = tls::get(tls_any, "a.test", &config, &format!("/r{i}")).unwrap();
                assert_eq!(tls::status(&answer), 200);
            }
            let per_shard = g.counters(Duration::from_secs(5));
            for c in &per_shard {
                resumed += c.tls_handshakes[2];
            }
            let full: u64 = per_shard
                .iter()
                .map(|c| c.tls_handshakes[0] + c.tls_handshakes[1])
                .sum();
            assert_eq!(
                full, 1,
                "{driver} {version:?}: one full handshake, then resumptions: {per_shard:?}"
            );
            assert_eq!(resumed, 23, "{driver} {version:?}");
            // both shards resumed sessions; one of them never did a full handshake
            assert!(
                per_shard.iter().all(|c| c.tls_handshakes[2] > 0),
                "{driver} {version:?}: {per_shard:?}"
            );
        }
    }
}

/// A client that connects and never finishes its handshake is cut off after
/// `handshake_timeout` and counted; others are served meanwhile.
#[test]
fn a_stalled_handshake_times_out() {
    let certs = Certs::new();
    let origin = Origin::start();
    let list = certs.list();
    for driver in DRIVERS {
        let Some(g) = InProcess::start_text(&format!(
            "[server]\ndriver = \"{driver}\"\npin = false\nshards = 1\n[[listener]]\naddress = \"127.0.0.1:0\"\n[listener.tls]\ncertificates = {list}\nhandshake_timeout = \"300ms\"\n[[upstream]]\nname = \"o\"\ntargets = [\"{}\"]\n[[route]]\nupstream = \"o\"\n",
            origin.addr
        )) else {
            continue;
        };
        let mut stalled = std::net::TcpStream::connect(g.addr).unwrap();
        stalled.write_all(b"\x16\x03\x01").unwrap(); // the start of a record, then nothing
        stalled
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let config = tls::client_config(&certs.ca, &[&TLS13], None);
        assert_eq!(
            tls::status(&tls::get(g.addr, "a.test", &config, "/").unwrap()),
            200
        );
        // the gateway closes it: the read ends (no bytes, or an alert then the end)
        let mut out = Vec::new();
        assert!(
            stalled.read_to_end(&mut out).is_ok(),
            "{driver}: closed, not left hanging"
        );
        assert!(
            support::eventually(|| g.total().tls_failures.contains(&("timeout", 1))),
            "{driver}: {:?}",
            g.total().tls_failures
        );
    }
}
