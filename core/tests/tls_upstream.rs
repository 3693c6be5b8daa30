//! TLS to an upstream: verified against a configured CA and the name sent as SNI (the target's
//! host, or `server_name`); a certificate from another CA, or for another name, is a 502 that
//! says nothing of why to the client. Connections are pooled through TLS, one the origin
//! closed behind the pool's back is not used for the next request, and a client certificate
//! can be presented to an origin that demands one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use support::tls::{self, Ca};
use support::tls_origin::{Options, TlsOrigin};
use support::{DRIVERS, Gateway, TempDir, request};

#[test]
fn upstream_tls_verifies_the_ca_and_the_name() {
    let origin_ca = Ca::new("origin CA");
    let other_ca = Ca::new("other CA");
    let dir = TempDir::new();
    std::fs::write(dir.0.join("origin-ca.pem"), origin_ca.pem()).unwrap();
    std::fs::write(dir.0.join("other-ca.pem"), other_ca.pem()).unwrap();
    let cert = origin_ca.issue("origin", &["origin.test"], false);
    let origin = tls::origin(&cert);
    let d = dir.0.display();
    let config = |ca: &str, name: &str| {
        format!(
            "[[upstream]]\nname = \"o\"\ntargets = [\"{origin}\"]\n[upstream.tls]\nca = \"{d}/{ca}\"\n{name}\n[[route]]\npath = \"/{{*rest}}\"\nupstream = \"o\"\n"
        )
    };
    for driver in DRIVERS {
        // the right CA and the certificate's name
        let Some(g) = Gateway::start(
            driver,
            "shards = 1",
            &config("origin-ca.pem", "server_name = \"origin.test\""),
        ) else {
            continue;
        };
        for i in 0..3 {
            let r = request(g.addr, "GET", &format!("/over-tls/{i}"), "", b"");
            assert_eq!(r.status, 200, "{driver}");
            let head = String::from_utf8_lossy(&r.body);
            assert!(
                head.starts_with(&format!("GET /over-tls/{i} HTTP/1.1")),
                "{driver}: {head}"
            );
            assert!(head.contains("X-Forwarded-Proto: http\r\n"), "{head}");
        }
        drop(g);
        // another CA, or the target's own name (an IP the certificate does not have)
        for (ca, name) in [
            ("other-ca.pem", "server_name = \"origin.test\""),
            ("origin-ca.pem", ""),
            ("origin-ca.pem", "server_name = \"elsewhere.test\""),
        ] {
            let g = Gateway::start(driver, "shards = 1", &config(ca, name)).unwrap();
            let r = request(g.addr, "GET", "/x", "", b"");
            assert_eq!(r.status, 502, "{driver} {ca} {name}");
            let body = String::from_utf8_lossy(&r.body);
            assert!(
                body.contains("\"detail\":\"upstream unavailable\""),
                "{body}"
            );
            assert!(
                !body.to_lowercase().contains("cert"),
                "nothing of why: {body}"
            );
        }
    }
}

#[test]
fn upstream_tls_is_pooled_checked_for_staleness_and_presents_a_client_certificate() {
    let origin_ca = Ca::new("origin CA");
    let client_ca = Ca::new("gateway clients");
    let dir = TempDir::new();
    std::fs::write(dir.0.join("origin-ca.pem"), origin_ca.pem()).unwrap();
    client_ca
        .issue("gateway", &["gw.clients.test"], false)
        .write(&dir.0, "client");
    let cert = origin_ca.issue("origin", &["origin.test"], false);
    let d = dir.0.display();
    let config = |origin: &TlsOrigin, client: bool| {
        let id = if client {
            format!("client_cert = \"{d}/client.pem\"\nclient_key = \"{d}/client.key\"\n")
        } else {
            String::new()
        };
        format!(
            "[[upstream]]\nname = \"o\"\ntargets = [\"{}\"]\nkeepalive = 8\n[upstream.tls]\nca = \"{d}/origin-ca.pem\"\nserver_name = \"origin.test\"\n{id}[[route]]\npath = \"/{{*rest}}\"\nupstream = \"o\"\n",
            origin.addr
        )
    };
    for driver in DRIVERS {
        // kept alive: every request over the one pooled TLS connection
        let origin = TlsOrigin::start(&cert, Options::default());
        let Some(g) = Gateway::start(driver, "shards = 1", &config(&origin, false)) else {
            continue;
        };
        for k in 1..=5 {
            let r = request(g.addr, "GET", "/pooled", "", b"");
            assert_eq!(r.status, 200, "{driver}");
            assert_eq!(String::from_utf8_lossy(&r.body), format!("conn 1 req {k}"));
        }
        assert_eq!(origin.accepted(), 1, "{driver}: one upstream connection");
        drop(g);

        // the origin closes after each answer: the closed connection never serves a request
        let origin = TlsOrigin::start(
            &cert,
            Options {
                close_after_answer: true,
                ..Options::default()
            },
        );
        let g = Gateway::start(driver, "shards = 1", &config(&origin, false)).unwrap();
        for k in 1..=4 {
            let r = request(g.addr, "GET", "/stale", "", b"");
            assert_eq!(r.status, 200, "{driver} request {k}");
            assert!(
                String::from_utf8_lossy(&r.body).ends_with(" req 1"),
                "{driver}: a fresh connection each time"
            );
        }
        drop(g);

        // an origin demanding a client certificate: 200 with one configured, 502 without
        let origin = TlsOrigin::start(
            &cert,
            Options {
                client_ca: Some(&client_ca),
                ..Options::default()
            },
        );
        let g = Gateway::start(driver, "shards = 1", &config(&origin, true)).unwrap();
        assert_eq!(
            request(g.addr, "GET", "/mtls", "", b"").status,
            200,
            "{driver}"
        );
        drop(g);
        let g = Gateway::start(driver, "shards = 1", &config(&origin, false)).unwrap();
        assert_eq!(
            request(g.addr, "GET", "/mtls", "", b"").status,
            502,
            "{driver}"
        );
    }
}
