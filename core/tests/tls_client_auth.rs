//! mTLS: a listener requiring client certificates refuses a client without one (or with an
//! expired or foreign one) and admits a verified one; `optional` lets both in; the `client_cert`
//! stage forwards the verified subject (spoofed copies dropped) and refuses without one; an
//! `authorize` rule can demand a certificate, or roles from its SANs.
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

/// The server's CA, the clients' CA, and a directory holding the gateway's certificate
/// (`server.pem`, for `gw.test`) and the clients' CA (`clients.pem`).
fn pki() -> (Ca, Ca, TempDir) {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let dir = TempDir::new();
    server_ca
        .issue("gw", &["gw.test"], false)
        .write(&dir.0, "server");
    std::fs::write(dir.0.join("clients.pem"), client_ca.pem()).unwrap();
    (server_ca, client_ca, dir)
}

/// A gateway with a TLS listener (`client_auth = auth`) and `routes` to `origin`.
fn gateway_with(driver: &str, dir: &TempDir, auth: &str, routes: &str) -> Option<InProcess> {
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
{routes}"#
    ))
}

/// One route to `origin` through the `client_cert` stage.
fn gateway(
    driver: &str,
    dir: &TempDir,
    auth: &str,
    require: bool,
    origin: std::net::SocketAddr,
) -> Option<InProcess> {
    gateway_with(
        driver,
        dir,
        auth,
        &format!(
            r#"
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
        ),
    )
}

#[test]
fn client_certificates_required_optional_and_forwarded() {
    let (server_ca, client_ca, dir) = pki();
    let other_ca = Ca::new("someone else");
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

/// `authorize` over an optional-mTLS listener: a rule with `client_cert = true` refuses (403) an
/// API-key identity arriving without a certificate and admits it with one; a rule asking for a
/// role admits the certificate whose SAN carries it and refuses another.
#[test]
fn authorize_can_require_a_client_certificate() {
    let (server_ca, client_ca, dir) = pki();
    let alice = client_ca.issue("alice", &["deploy.clients.test"], false);
    let bob = client_ca.issue("bob", &["bob.clients.test"], false);
    let origin = Origin::start();
    for driver in DRIVERS {
        let Some(g) = gateway_with(
            driver,
            &dir,
            "optional",
            &format!(
                r#"
[[upstream]]
name = "origin"
targets = ["{origin}"]

[[route]]
path = "/keyed/{{*rest}}"
upstream = "origin"
[[route.policy]]
kind = "api_key"
insecure_plaintext = true
consumers = [{{ name = "ops", key = "k1", groups = ["ops"] }}]
[[route.policy]]
kind = "authorize"
rules = [{{ methods = ["PUT"], any_role = ["ops"], client_cert = true }}]

[[route]]
path = "/{{*rest}}"
upstream = "origin"
[[route.policy]]
kind = "client_cert"
require = false
[[route.policy]]
kind = "authorize"
rules = [{{ methods = ["DELETE"], any_role = ["DNS:deploy.clients.test"] }}]
"#,
                origin = origin.addr
            ),
        ) else {
            continue;
        };
        let addr = g.addrs[1];
        let anon = tls::client_config(&server_ca, &[&TLS13], None);
        let as_alice = tls::client_config(&server_ca, &[&TLS13], Some(&alice));
        let as_bob = tls::client_config(&server_ca, &[&TLS13], Some(&bob));
        let put = "PUT /keyed/x HTTP/1.1\r\nHost: gw.test\r\nX-Api-Key: k1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let del = "DELETE /svc HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n";
        let send = |config, request: &str| {
            let mut s = tls::connect(addr, "gw.test", config).unwrap();
            tls::exchange(&mut s, request).unwrap()
        };
        let answer = send(&anon, put);
        assert_eq!(tls::status(&answer), 403, "{driver}: {answer}");
        assert!(
            answer.contains("needs a verified TLS client certificate"),
            "{driver}: {answer}"
        );
        assert_eq!(tls::status(&send(&as_bob, put)), 200, "{driver}");
        assert_eq!(tls::status(&send(&anon, del)), 401, "{driver}");
        let answer = send(&as_bob, del);
        assert_eq!(tls::status(&answer), 403, "{driver}: {answer}");
        assert!(
            answer.contains("the identity is not allowed"),
            "{driver}: {answer}"
        );
        assert_eq!(tls::status(&send(&as_alice, del)), 200, "{driver}");
    }
}

/// A session made on a listener that asks for no certificate does not resume on one that
/// requires it (a resumed session skips the certificate request): its ticket does not open
/// there, so the client is asked for a certificate and, without one, refused.
#[test]
fn a_ticket_from_another_listener_does_not_skip_mtls() {
    let (server_ca, client_ca, dir) = pki();
    let alice = client_ca.issue("alice", &["alice.clients.test"], false);
    let origin = Origin::start();
    let d = dir.0.display();
    for driver in DRIVERS {
        // listener 1 requires a certificate; listener 2, with the same certificate, does not
        let Some(g) = gateway_with(
            driver,
            &dir,
            "required",
            &format!(
                r#"
[[listener]]
address = "127.0.0.1:0"
[listener.tls]
certificates = [{{ cert = "{d}/server.pem", key = "{d}/server.key" }}]

[[upstream]]
name = "origin"
targets = ["{origin}"]
[[route]]
path = "/{{*rest}}"
upstream = "origin"
"#,
                origin = origin.addr
            ),
        ) else {
            continue;
        };
        let (strict, open) = (g.addrs[1], g.addrs[2]);
        for version in [&TLS13, &TLS12] {
            // one config, so its session store offers what it got on `open` to `strict`
            let anon = tls::client_config(&server_ca, &[version], None);
            for _ in 0..2 {
                let answer = tls::get(open, "gw.test", &anon, "/open").unwrap();
                assert_eq!(tls::status(&answer), 200, "{driver} {version:?}");
            }
            let r = tls::get(strict, "gw.test", &anon, "/strict");
            assert!(
                r.as_ref().map_or(true, |a| tls::status(a) != 200),
                "{driver} {version:?}: resumed past mTLS: {r:?}"
            );
            // with a certificate, the same path gets in
            let id = tls::client_config(&server_ca, &[version], Some(&alice));
            tls::get(open, "gw.test", &id, "/open").unwrap();
            let answer = tls::get(strict, "gw.test", &id, "/strict").unwrap();
            assert_eq!(tls::status(&answer), 200, "{driver} {version:?}");
        }
        let resumed: u64 = g.total().tls_handshakes[2];
        assert!(
            resumed >= 2,
            "{driver}: resumption still works on one listener"
        );
    }
}
