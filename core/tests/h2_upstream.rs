//! HTTP/2 upstreams (`protocol = "h2c"`) through real sockets: a gRPC service written in the
//! test (unary, server streaming, bidi, an error) behind the gateway with JWT on its route,
//! called by a real HTTP/2 client; trailers come back, refusals are gRPC statuses; an
//! HTTP/1.1 client reaches the same HTTP/2 origin; streams share the upstream connections.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use jsonwebtoken::{EncodingKey, Header, encode};
use support::h2::{self, call};
use support::h2_origin::{H2Origin, message, messages};
use support::inproc::InProcess;
use support::{DRIVERS, request};

const SECRET: &str = "a-test-secret-of-enough-length-for-hs256";

fn config(origin: std::net::SocketAddr) -> String {
    format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
h2c = true

[[upstream]]
name = "grpc"
targets = ["{origin}"]
protocol = "h2c"
h2_connections = 1

[[route]]
path = "/echo.Echo/{{method}}"
upstream = "grpc"
[[route.policy]]
kind = "jwt"
algorithms = ["HS256"]
secret = "{SECRET}"

[[upstream]]
name = "dead"
targets = ["{dead}"]
protocol = "h2c"

[[route]]
path = "/dead.Svc/{{method}}"
upstream = "dead"

[[route]]
path = "/{{*rest}}"
upstream = "grpc"
"#,
        dead = support::origin::closed_port()
    )
}

fn token() -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let claims = serde_json::json!({ "sub": "alice", "exp": exp });
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn grpc(path: &str, bearer: Option<&str>) -> http::Request<()> {
    let mut b = http::Request::post(format!("http://svc.test{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(t) = bearer {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(()).unwrap()
}

#[test]
fn grpc_calls_pass_through_to_an_h2c_service_with_jwt_on_the_route() {
    let origin = H2Origin::start();
    let mut runs = 0;
    for driver in DRIVERS {
        let Some(g) = InProcess::start(driver, "shards = 1", &config(origin.addr)) else {
            continue;
        };
        runs += 1;
        let addr = g.addrs[1];
        let t = token();
        let rt = h2::runtime();
        rt.block_on(async {
            let client = h2::connect(addr).await;
            // unary: the message back, then grpc-status 0 in the trailers
            let body = message(b"hello");
            let a = call(&client, grpc("/echo.Echo/Unary", Some(&t)), Some(body))
                .await
                .unwrap();
            assert_eq!(a.status, 200, "{driver}");
            assert_eq!(a.header("content-type"), Some("application/grpc"));
            assert_eq!(messages(&a.body), vec![b"hello".to_vec()], "{driver}");
            let trailers = a.trailers.expect("trailers");
            assert_eq!(trailers.get("grpc-status").unwrap(), "0", "{driver}");
            // server streaming: five messages, then the status
            let a = call(
                &client,
                grpc("/echo.Echo/Stream", Some(&t)),
                Some(message(b"")),
            )
            .await
            .unwrap();
            let got = messages(&a.body);
            assert_eq!(got.len(), 5, "{driver}");
            assert_eq!(got[4], vec![4; 3]);
            assert_eq!(a.trailers.unwrap().get("grpc-status").unwrap(), "0");
            // bidi: three messages out, three back
            let mut out = message(b"a");
            out.extend(message(b"bb"));
            out.extend(message(b"ccc"));
            let a = call(&client, grpc("/echo.Echo/Bidi", Some(&t)), Some(out))
                .await
                .unwrap();
            assert_eq!(
                messages(&a.body),
                vec![b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()]
            );
            assert_eq!(a.trailers.unwrap().get("grpc-status").unwrap(), "0");
            // the service's error, Trailers-Only, arrives as sent
            let a = call(
                &client,
                grpc("/echo.Echo/Missing", Some(&t)),
                Some(message(b"x")),
            )
            .await
            .unwrap();
            assert_eq!(a.header("grpc-status"), Some("5"), "{driver}");
            assert_eq!(a.header("grpc-message"), Some("no such item"));
            assert!(a.body.is_empty());
            // no token: the gateway refuses with UNAUTHENTICATED, the service never sees it
            let a = call(&client, grpc("/echo.Echo/Unary", None), Some(message(b"x")))
                .await
                .unwrap();
            assert_eq!(
                (a.status, a.header("grpc-status")),
                (200, Some("16")),
                "{driver}"
            );
            // the client's grpc-timeout bounds the call (the service takes 5 s to answer):
            // DEADLINE_EXCEEDED
            let mut slow = grpc("/echo.Echo/Slow", Some(&t));
            slow.headers_mut()
                .insert("grpc-timeout", "200m".parse().unwrap());
            let a = call(&client, slow, Some(message(b"x"))).await.unwrap();
            assert_eq!(a.header("grpc-status"), Some("4"), "{driver}");
            // a dead service: UNAVAILABLE to a gRPC client
            let a = call(&client, grpc("/dead.Svc/Get", None), Some(message(b"x")))
                .await
                .unwrap();
            assert_eq!(a.header("grpc-status"), Some("14"), "{driver}");
            // ten calls at once share the one upstream connection
            let mut set = tokio::task::JoinSet::new();
            for i in 0..10u8 {
                let (client, t) = (client.clone(), t.clone());
                set.spawn(async move {
                    let a = call(
                        &client,
                        grpc("/echo.Echo/Unary", Some(&t)),
                        Some(message(&[i])),
                    )
                    .await;
                    (i, a.unwrap())
                });
            }
            while let Some(done) = set.join_next().await {
                let (i, a) = done.unwrap();
                assert_eq!(messages(&a.body), vec![vec![i]], "{driver}");
            }
        });
        // an HTTP/1.1 client reaches the HTTP/2 origin too
        let r = request(addr, "GET", "/plain", "", b"");
        assert_eq!(
            (r.status, &r.body[..]),
            (200, &b"h2 origin"[..]),
            "{driver}"
        );
        let body = message(&[7; 40_000]);
        let fields = format!(
            "Authorization: Bearer {t}\r\nContent-Type: application/grpc\r\nContent-Length: {}\r\n",
            body.len()
        );
        let r = request(addr, "POST", "/echo.Echo/Unary", &fields, &body);
        assert_eq!(
            (r.status, r.body == body),
            (200, true),
            "{driver}: a sized body both ways"
        );
        let seen = origin.seen();
        let unary = seen.iter().find(|s| s.path == "/echo.Echo/Unary").unwrap();
        assert_eq!(
            unary.headers.get("te").unwrap(),
            "trailers",
            "gRPC servers want te"
        );
        assert!(unary.headers.get("connection").is_none());
        let unary = seen.iter().filter(|s| s.path == "/echo.Echo/Unary");
        assert!(unary.clone().count() >= 11, "{driver}");
        assert!(
            unary
                .clone()
                .all(|s| s.headers.contains_key("authorization")),
            "only admitted calls"
        );
    }
    assert_eq!(
        *origin.conns.lock().unwrap(),
        runs,
        "one upstream connection per run"
    );
}

#[test]
fn an_h2_upstream_over_tls_is_chosen_by_alpn() {
    let ca = support::tls::Ca::new("h2 origin CA");
    let cert = ca.issue("origin", &["127.0.0.1"], false);
    let origin = H2Origin::start_tls(&cert);
    let dir = support::TempDir::new();
    let ca_file = dir.0.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let rest = format!(
        "[[upstream]]\nname = \"o\"\ntargets = [\"{}\"]\nprotocol = \"h2\"\n[upstream.tls]\nca = \"{}\"\n\n[[route]]\npath = \"/{{*rest}}\"\nupstream = \"o\"\n",
        origin.addr,
        ca_file.display()
    );
    for driver in DRIVERS {
        let Some(g) = InProcess::start(driver, "shards = 1", &rest) else {
            continue;
        };
        // an HTTP/1.1 client, an HTTP/2 upstream over TLS
        let r = request(g.addr, "GET", "/plain", "", b"");
        assert_eq!(
            (r.status, &r.body[..]),
            (200, &b"h2 origin"[..]),
            "{driver}"
        );
        let body = message(b"over tls");
        let fields = format!(
            "Content-Type: application/grpc\r\nContent-Length: {}\r\n",
            body.len()
        );
        let r = request(g.addr, "POST", "/echo.Echo/Unary", &fields, &body);
        assert_eq!((r.status, r.body == body), (200, true), "{driver}");
    }
    assert!(origin.seen().iter().all(|s| s.headers.get("te").is_some()));
}

#[test]
fn grpc_web_binary_and_text_round_trip_to_a_grpc_service() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let origin = H2Origin::start();
    for driver in DRIVERS {
        let Some(g) = InProcess::start(driver, "shards = 1", &config(origin.addr)) else {
            continue;
        };
        let t = token();
        let call_web = |ct: &str, body: &[u8]| {
            let fields = format!(
                "Authorization: Bearer {t}\r\nContent-Type: {ct}\r\nX-Grpc-Web: 1\r\nContent-Length: {}\r\n",
                body.len()
            );
            request(g.addr, "POST", "/echo.Echo/Unary", &fields, body)
        };
        let trailer_frame = b"\x80\0\0\0\x10grpc-status: 0\r\n";
        // binary: the message, then the trailers as the body's last frame
        let r = call_web("application/grpc-web+proto", &message(b"hi"));
        assert_eq!(r.status, 200, "{driver}");
        assert_eq!(r.header("content-type"), Some("application/grpc-web+proto"));
        let mut want = message(b"hi");
        want.extend_from_slice(trailer_frame);
        assert_eq!(r.body, want, "{driver}");
        // text: base64 both ways
        let sent = b64.encode(message(b"hello text"));
        let r = call_web("application/grpc-web-text", sent.as_bytes());
        assert_eq!(r.status, 200, "{driver}");
        assert_eq!(
            r.header("content-type"),
            Some("application/grpc-web-text+proto")
        );
        let got = b64.decode(&r.body).unwrap();
        let mut want = message(b"hello text");
        want.extend_from_slice(trailer_frame);
        assert_eq!(got, want, "{driver}");
        // the service saw plain gRPC
        let seen = origin.seen();
        let last = seen.last().unwrap();
        assert_eq!(
            last.headers.get("content-type").unwrap(),
            "application/grpc"
        );
        // text that is not base64 ends the call with an error status, not a message
        let r = call_web("application/grpc-web-text", b"not base64!");
        let status = r.header("grpc-status");
        assert!(status.is_some_and(|s| s != "0"), "{driver}: {status:?}");
        assert!(r.body.is_empty(), "{driver}");
    }
}
