//! HTTP/2 with clients, through real sockets: a real HTTP/2 client (the `h2` crate) speaks to
//! the gateway by prior knowledge (h2c) and over TLS chosen by ALPN; each stream reaches a
//! real HTTP/1.1 origin through the same routes and stages as an HTTP/1.1 request (sized and
//! chunked bodies both ways, refusals as problem+json), many streams share one connection,
//! and every stream ends in exactly one `on_finish`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use std::net::SocketAddr;

use support::h2::{self, call, get};
use support::inproc::InProcess;
use support::origin::Origin;
use support::{DRIVERS, eventually, pattern, raw, request};

fn config(origin: SocketAddr, extra_listener: &str) -> String {
    format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
h2c = true
{extra_listener}

[[upstream]]
name = "origin"
targets = ["{origin}"]

[[route]]
name = "refused"
path = "/refused"
upstream = "origin"
[[route.policy]]
kind = "ip"
deny = ["127.0.0.0/8"]

[[route]]
path = "/{{*rest}}"
upstream = "origin"
"#
    )
}

#[test]
fn streams_over_h2c_reach_an_http1_origin_through_the_same_routes() {
    let origin = Origin::start();
    for driver in DRIVERS {
        let server = "shards = 1\nmax_body = \"64KiB\"";
        let Some(g) = InProcess::start(driver, server, &config(origin.addr, "")) else {
            continue;
        };
        origin.reset_counts();
        let addr = g.addrs[1];
        let authority = format!("api.test:{}", addr.port());
        let rt = h2::runtime();
        rt.block_on(async {
            let client = h2::connect(addr).await;
            // a GET with a query and a field of its own
            let req = http::Request::get(format!("http://{authority}/size/1000"))
                .header("x-test", "yes")
                .header("cookie", "a=1")
                .header("cookie", "b=2")
                .body(())
                .unwrap();
            let a = call(&client, req, None).await.unwrap();
            assert_eq!(a.status, 200, "{driver}");
            assert_eq!(a.body, pattern(1000), "{driver}");
            assert_eq!(a.header("x-origin"), Some("yes"));
            assert!(
                a.header("connection").is_none(),
                "no hop-by-hop field on HTTP/2"
            );
            let a = call(&client, get(&authority, "/query?q=1&r=%20"), None)
                .await
                .unwrap();
            assert_eq!(a.status, 200, "{driver}");
            // a sized body, then one whose length the client did not say (chunked upstream)
            let body = pattern(40_000);
            let req = http::Request::post(format!("http://{authority}/sized"))
                .header("content-length", "40000")
                .body(())
                .unwrap();
            assert_eq!(
                call(&client, req, Some(body.clone())).await.unwrap().status,
                200
            );
            let req = http::Request::post(format!("http://{authority}/streamed"))
                .body(())
                .unwrap();
            assert_eq!(
                call(&client, req, Some(body.clone())).await.unwrap().status,
                200
            );
            // a chunked response arrives as DATA, unframed
            let a = call(&client, get(&authority, "/chunked/50000"), None)
                .await
                .unwrap();
            assert_eq!(a.body, pattern(50_000), "{driver}");
            assert!(
                a.trailers.is_none(),
                "{driver}: trailers only when asked for"
            );
            // with `te: trailers`, the origin's trailer section arrives as HTTP/2 trailers
            let req = http::Request::get(format!("http://{authority}/chunked/3000"))
                .header("te", "trailers")
                .body(())
                .unwrap();
            let a = call(&client, req, None).await.unwrap();
            assert_eq!(a.body, pattern(3000), "{driver}");
            let t = a.trailers.expect("trailers");
            assert_eq!(t.get("x-trailer").map(|v| v.as_bytes()), Some(&b"t"[..]));
            // a stage's refusal and a local answer are problem+json, as over HTTP/1.1
            let a = call(&client, get(&authority, "/refused"), None)
                .await
                .unwrap();
            assert_eq!(a.status, 403, "{driver}");
            assert_eq!(a.header("content-type"), Some("application/problem+json"));
            let req = http::Request::post(format!("http://{authority}/big"))
                .header("content-length", "70000")
                .body(())
                .unwrap();
            let a = call(&client, req, Some(pattern(70_000))).await.unwrap();
            assert_eq!(a.status, 413, "{driver}: over max_body");
            // 40 streams at once on the one connection
            let mut set = tokio::task::JoinSet::new();
            for i in 0..40 {
                let client = client.clone();
                let authority = authority.clone();
                set.spawn(async move {
                    let a = call(&client, get(&authority, &format!("/size/{i}")), None).await;
                    (i, a.unwrap())
                });
            }
            while let Some(done) = set.join_next().await {
                let (i, a) = done.unwrap();
                assert_eq!((a.status, a.body.len()), (200, i), "{driver}: stream {i}");
            }
        });
        let seen = origin.records();
        assert!(
            seen.iter().any(|r| r.target == "/query?q=1&r=%20"),
            "the query passes as sent"
        );
        let first = seen.iter().find(|r| r.target == "/size/1000").unwrap();
        assert_eq!(first.method, "GET");
        assert_eq!(first.header("host").as_deref(), Some(authority.as_str()));
        assert_eq!(first.header("x-test").as_deref(), Some("yes"));
        assert_eq!(first.header("cookie").as_deref(), Some("a=1; b=2"));
        let sized = seen.iter().find(|r| r.target == "/sized").unwrap();
        assert_eq!(sized.header("content-length").as_deref(), Some("40000"));
        assert_eq!(
            (sized.body_len, sized.body == pattern(40_000)),
            (40_000, true)
        );
        let streamed = seen.iter().find(|r| r.target == "/streamed").unwrap();
        assert_eq!(
            streamed.header("transfer-encoding").as_deref(),
            Some("chunked")
        );
        assert_eq!(
            (streamed.body_len, streamed.body == pattern(40_000)),
            (40_000, true)
        );
        assert!(
            !seen
                .iter()
                .any(|r| r.target == "/refused" || r.target == "/big")
        );
        // the listener still speaks HTTP/1.1 to HTTP/1.1 clients
        assert_eq!(request(addr, "GET", "/size/3", "", b"").status, 200);
        // 48 streams and one HTTP/1.1 request: each finished exactly once
        assert!(
            eventually(|| g.total().finished == 49),
            "{driver}: {:?}",
            g.total()
        );
        let t = g.total();
        assert_eq!(t.requests, 49, "{driver}");
        assert_eq!(
            t.h2,
            [1, 0, 0],
            "{driver}: one HTTP/2 connection, no refusal"
        );
    }
}

#[test]
fn without_h2c_the_preface_is_a_bad_http1_request() {
    let origin = Origin::start();
    let Some(g) = InProcess::start("epoll", "", &config(origin.addr, "")) else {
        return;
    };
    let got = raw(g.addrs[0], &h2::preface(&[]));
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 505 ") || text.starts_with("HTTP/1.1 400 "),
        "{text}"
    );
}

#[test]
fn a_tls_listener_speaks_h2_when_alpn_picks_it() {
    let origin = Origin::start();
    let ca = support::tls::Ca::new("h2 CA");
    let cert = ca.issue("gw", &["gw.test"], false);
    let dir = support::TempDir::new();
    let (pem, key) = cert.write(&dir.0, "gw");
    let tls = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[listener.tls]\ncertificates = [{{ cert = \"{}\", key = \"{}\" }}]\nalpn = [\"h2\", \"http/1.1\"]\n",
        pem.display(),
        key.display()
    );
    for driver in DRIVERS {
        let Some(g) = InProcess::start(driver, "shards = 2", &config(origin.addr, &tls)) else {
            continue;
        };
        origin.reset_counts();
        let addr = g.addrs[2];
        let versions = &[&rustls::version::TLS13, &rustls::version::TLS12];
        let rt = h2::runtime();
        rt.block_on(async {
            let config = (*support::tls::client_config(&ca, versions, None)).clone();
            let (client, alpn) = h2::connect_tls(addr, "gw.test", config).await;
            assert_eq!(alpn.as_deref(), Some(&b"h2"[..]), "{driver}");
            let a = call(&client, get("gw.test", "/size/5000"), None)
                .await
                .unwrap();
            assert_eq!((a.status, a.body), (200, pattern(5000)), "{driver}");
        });
        let r = origin.records();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].header("x-forwarded-proto").as_deref(), Some("https"));
        // a client that offers only http/1.1 gets HTTP/1.1 on the same listener
        let config = support::tls::client_config(&ca, versions, None);
        let answer = support::tls::get(addr, "gw.test", &config, "/size/7").unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 "), "{driver}: {answer}");
        assert_eq!(g.total().h2, [1, 0, 0], "{driver}");
    }
}

#[test]
fn a_grpc_client_is_refused_with_grpc_statuses() {
    let origin = Origin::start();
    let rest = format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
h2c = true

[[upstream]]
name = "origin"
targets = ["{}"]

[[route]]
path = "/svc.Auth/{{m}}"
upstream = "origin"
[[route.policy]]
kind = "api_key"
consumers = [{{ name = "a", key_sha256 = "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0" }}]

[[route]]
path = "/svc.Denied/{{m}}"
upstream = "origin"
[[route.policy]]
kind = "ip"
deny = ["127.0.0.0/8"]

[[route]]
path = "/svc.Limited/{{m}}"
upstream = "origin"
[[route.policy]]
kind = "rate_limit"
rate = 1
per = "1h"
burst = 1
"#,
        origin.addr
    );
    for driver in DRIVERS {
        let Some(g) = InProcess::start(driver, "shards = 1", &rest) else {
            continue;
        };
        let addr = g.addrs[1];
        let rt = h2::runtime();
        rt.block_on(async {
            let client = h2::connect(addr).await;
            let grpc = |path: &str| {
                http::Request::post(format!("http://svc.test{path}"))
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .body(())
                    .unwrap()
            };
            let cases = [
                ("/svc.Auth/Get", "16"),
                ("/svc.Denied/Get", "7"),
                ("/svc.Limited/Get", ""),
                ("/svc.Limited/Get", "8"),
                ("/svc.Missing/Get", "12"),
            ];
            for (path, code) in cases {
                let frame = vec![0, 0, 0, 0, 2, 8, 1];
                let a = call(&client, grpc(path), Some(frame)).await.unwrap();
                if code.is_empty() {
                    // the one call the limit admits reaches the origin
                    assert_eq!(a.status, 200, "{driver} {path}");
                    assert!(a.header("grpc-status").is_none(), "{driver} {path}");
                    continue;
                }
                assert_eq!(a.status, 200, "{driver} {path}: gRPC refusals are HTTP 200");
                assert_eq!(a.header("grpc-status"), Some(code), "{driver} {path}");
                assert_eq!(a.header("content-type"), Some("application/grpc"));
                assert!(a.header("grpc-message").is_some_and(|m| !m.is_empty()));
                assert!(a.body.is_empty(), "{driver} {path}: Trailers-Only");
            }
            // the same refusal to a plain HTTP client stays problem+json
            let plain = http::Request::get("http://svc.test/svc.Auth/Get")
                .body(())
                .unwrap();
            let a = call(&client, plain, None).await.unwrap();
            assert_eq!(a.status, 401, "{driver}");
            assert_eq!(a.header("content-type"), Some("application/problem+json"));
        });
    }
}
