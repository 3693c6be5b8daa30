//! TLS to an upstream: verified against a configured CA and the name sent as SNI (the target's
//! host, or `server_name`); a certificate from another CA, or for another name, is a 502 that
//! says nothing of why to the client.
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
