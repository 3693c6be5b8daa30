//! mTLS: a listener requiring client certificates refuses a client without one (or with an
//! expired or foreign one) and admits a verified one; `optional` lets both in; the `client_cert`
//! stage forwards the verified subject (spoofed copies dropped) and refuses without one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use rustls::version::{TLS12, TLS13};
use support::inproc::InProcess;
use support::origin::Origin;
use support::tls::{self, Ca};
use support::{DRIVERS, TempDir};

fn gateway(
    driver: &str,
    dir: &TempDir,
    auth: &str,
    require: bool,
    origin: std::net::SocketAddr,
) -> Option<InProcess> {
    let d = dir.0.display();
    InProcess::start_text(&format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
driver = "{driver}"
pin = false
shards = 1

[[listener]]
address = "127.0.0.1:0"
[listener.tls]
certificates = [{{ cert = "{d}/server.pem", key = "{d}/server.key" }}]
client_auth = "{auth}"
client_ca = "{d}/clients.pem"

[[upstream]]
name = "origin"
targets = ["{origin}"]

[[route]]
path = "/{{*rest}}"
upstream = "origin"
[[route.policy]]
kind = "client_cert"
require = {require}
forward_subject = "X-Client-Subject"
forward_fingerprint = "X-Client-Sha256"
"#
    ))
}

#[test]
fn client_certificates_required_optional_and_forwarded() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let other_ca = Ca::new("someone else");
    let dir = TempDir::new();
    server_ca
        .issue("gw", &["gw.test"], false)
        .write(&dir.0, "server");
    std::fs::write(dir.0.join("clients.pem"), client_ca.pem()).unwrap();
    let alice = client_ca.issue("alice", &["alice.clients.test"], false);
    let expired = client_ca.issue("old", &["old.clients.test"], true);
    let foreign = other_ca.issue("mallory", &["mallory.test"], false);
    let origin = Origin::start();
    for driver in DRIVERS {
        for version in [&TLS13, &TLS12] {
            let Some(g) = gateway(driver, &dir, "required", true, origin.addr) else {
                continue;
            };
            let addr = g.addrs[1];
            let with = |id| tls::client_config(&server_ca, &[version], id);
            origin.reset_counts();
            // a verified certificate: admitted, its subject forwarded, the spoofed copy dropped
            let mut s = tls::connect(addr, "gw.test", &with(Some(&alice))).unwrap();
            let answer = tls::exchange(
                &mut s,
                "GET /me HTTP/1.1\r\nHost: gw.test\r\nX-Client-Subject: CN=admin\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
            assert_eq!(tls::status(&answer), 200, "{driver} {version:?}: {answer}");
            let seen = origin.records();
            assert_eq!(
                seen[0].header("x-client-subject").as_deref(),
                Some("CN=alice")
            );
            assert_eq!(
                seen[0].head.matches("X-Client-Subject").count(),
                1,
                "the spoofed copy is dropped"
            );
            assert_eq!(seen[0].header("x-client-sha256").map(|h| h.len()), Some(64));
            // no certificate, an expired one, one from another CA: refused in the handshake
            for (name, id) in [
                ("none", None),
                ("expired", Some(&expired)),
                ("foreign", Some(&foreign)),
            ] {
                let r = tls::get(addr, "gw.test", &with(id), "/me");
                assert!(
                    r.as_ref().map_or(true, |a| tls::status(a) != 200),
                    "{driver} {version:?} {name}: {r:?}"
                );
            }
            assert_eq!(
                origin.records().len(),
                1,
                "{driver}: nothing refused reached the upstream"
            );
            let failures = g.total().tls_failures;
            let n = failures
                .iter()
                .find(|(r, _)| *r == "client_certificate")
                .map_or(0, |x| x.1);
            assert_eq!(n, 3, "{driver} {version:?}: {failures:?}");
        }
        // optional: both get in; the stage without `require` forwards what there is
        let Some(g) = gateway(driver, &dir, "optional", false, origin.addr) else {
            continue;
        };
        let addr = g.addrs[1];
        origin.reset_counts();
        let plain = tls::client_config(&server_ca, &[&TLS13], None);
        assert_eq!(
            tls::status(&tls::get(addr, "gw.test", &plain, "/anon").unwrap()),
            200
        );
        let id = tls::client_config(&server_ca, &[&TLS13], Some(&alice));
        assert_eq!(
            tls::status(&tls::get(addr, "gw.test", &id, "/alice").unwrap()),
            200
        );
        let seen = origin.records();
        assert_eq!(
            seen[0].header("x-client-subject"),
            None,
            "{driver}: anonymous"
        );
        assert_eq!(
            seen[1].header("x-client-subject").as_deref(),
            Some("CN=alice")
        );
        drop(g);
        // optional listener, but the route's stage requires one: 401 without
        let Some(g) = gateway(driver, &dir, "optional", true, origin.addr) else {
            continue;
        };
        let answer = tls::get(g.addrs[1], "gw.test", &plain, "/anon").unwrap();
        assert_eq!(tls::status(&answer), 401, "{driver}: {answer}");
    }
}
