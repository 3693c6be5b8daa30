//! OAuth2 token introspection (RFC 7662) against an authorization server written here: a
//! busy token costs one introspection per shard however many requests carry it, inactive
//! and expired tokens are refused (the inactive answer cached too), a server that fails gives
//! 503, and an introspected client id is a catalogue consumer for the subscription stage.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use support::origin::Origin;
use support::{Gateway, TempDir, admin, request};

/// `gateway:s3cret` as RFC 6749 §2.3.1 Basic.
const BASIC: &str = "Basic Z2F0ZXdheTpzM2NyZXQ=";

/// The authorization server: counts introspections per token.
struct AuthServer {
    addr: SocketAddr,
    calls: Arc<Mutex<HashMap<String, u64>>>,
}

fn answer_for(token: &str) -> (u16, String) {
    let far = 4_000_000_000u64;
    match token {
        t if t.starts_with("good-") => (
            200,
            format!(
                r#"{{"active": true, "sub": "user-{}", "client_id": "app", "scope": "read write", "exp": {far}}}"#,
                &t[5..]
            ),
        ),
        "expired" => (200, r#"{"active": true, "sub": "old", "exp": 1000}"#.into()),
        "evil" => (
            200,
            r#"{"active": true, "sub": "bob\r\nX-Consumer-Id: admin"}"#.into(),
        ),
        "refresh" => (
            200,
            r#"{"active": true, "sub": "u", "token_type": "refresh_token"}"#.into(),
        ),
        "broken" => (500, "{}".into()),
        _ => (200, r#"{"active": false}"#.into()),
    }
}

/// `application/x-www-form-urlencoded` decoding.
fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn serve_one(mut s: TcpStream, calls: &Mutex<HashMap<String, u64>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let field = |name: &str| {
        head.lines().find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
        })
    };
    let len: usize = field("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
    let token = form_decode(
        body.split('&')
            .find_map(|p| p.strip_prefix("token="))
            .unwrap_or_default(),
    );
    let (status, json) = if field("authorization").as_deref() != Some(BASIC)
        || !head.starts_with("POST /oauth2/introspect ")
        || field("content-type").as_deref() != Some("application/x-www-form-urlencoded")
    {
        (401, r#"{"error": "invalid_client"}"#.to_string())
    } else {
        *calls.lock().unwrap().entry(token.clone()).or_default() += 1;
        answer_for(&token)
    };
    let out = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    );
    let _ = s.write_all(out.as_bytes());
}

impl AuthServer {
    fn start() -> AuthServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let calls = Arc::new(Mutex::new(HashMap::new()));
        let c = calls.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let c = c.clone();
                std::thread::spawn(move || serve_one(s, &c));
            }
        });
        AuthServer { addr, calls }
    }

    fn calls(&self, token: &str) -> u64 {
        self.calls.lock().unwrap().get(token).copied().unwrap_or(0)
    }
}

fn config(origin: SocketAddr, auth: SocketAddr, dir: &TempDir, client_id: &str) -> String {
    std::fs::write(dir.0.join("secret"), "s3cret\n").unwrap();
    let stage = format!(
        "[[route.policy]]\nkind = \"introspect\"\nendpoint = \"http://{auth}/oauth2/introspect\"\n\
         client_id = \"{client_id}\"\nclient_secret_file = \"{}\"\n",
        dir.0.join("secret").display()
    );
    format!(
        "[[upstream]]\nname = \"origin\"\ntargets = [\"{origin}\"]\n\n\
         [[route]]\nname = \"api\"\npath = \"/api/{{*rest}}\"\nupstream = \"origin\"\n{stage}\n\
         [[route]]\nname = \"orders\"\npath = \"/orders\"\nupstream = \"origin\"\n{stage}\
         [[route.policy]]\nkind = \"subscription\"\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"r00t-admin-token\"\n\n\
         [management]\npath = \"{}\"\n",
        dir.0.join("c.db").display()
    )
}

/// An origin, the authorization server, and a gateway (`server`: its `[server]` lines)
/// whose stage authenticates as `client_id`; the directory holds its files.
fn started(server: &str, client_id: &str) -> (Origin, AuthServer, TempDir, Gateway) {
    let (origin, auth, dir) = (Origin::start(), AuthServer::start(), TempDir::new());
    let config = config(origin.addr, auth.addr, &dir, client_id);
    let g = Gateway::start("auto", server, &config).unwrap();
    (origin, auth, dir, g)
}

fn get(g: &Gateway, path: &str, token: &str) -> support::Response {
    request(
        g.addr,
        "GET",
        path,
        &format!("Authorization: Bearer {token}\r\n"),
        b"",
    )
}

#[test]
fn a_busy_token_costs_one_introspection_per_shard() {
    let (origin, auth, _dir, g) = started("shards = 2", "gateway");
    // 8 clients at once, 25 requests each, every one on a new connection (both shards)
    let at = g.addr;
    let one = move || {
        let h = "Authorization: Bearer good-1\r\n";
        request(at, "GET", "/api/x", h, b"").status
    };
    let threads: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(move || (0..25).map(|_| one()).collect::<Vec<_>>()))
        .collect();
    let statuses: Vec<u16> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    let n = auth.calls("good-1");
    println!("{n} introspections for 200 requests on 2 shards");
    assert!(
        (1..=2).contains(&n),
        "{n} introspections for 200 requests on 2 shards"
    );
    let r = origin.records();
    assert!(
        r.iter()
            .all(|x| x.header("x-consumer-id").as_deref() == Some("user-1"))
    );
    // another token is its own introspection
    assert_eq!(get(&g, "/api/x", "good-2").status, 200);
    assert_eq!(auth.calls("good-2"), 1);
}

#[test]
fn inactive_expired_and_unanswered_tokens_are_refused() {
    let (origin, auth, _dir, g) = started("shards = 1", "gateway");
    for _ in 0..5 {
        let r = get(&g, "/api/x", "revoked-token");
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer error=\"invalid_token\"")
        );
    }
    assert_eq!(
        auth.calls("revoked-token"),
        1,
        "the inactive answer is cached"
    );
    let r = get(&g, "/api/x", "expired");
    assert_eq!(r.status, 401);
    assert!(String::from_utf8_lossy(&r.body).contains("expired"));
    let r = get(&g, "/api/x", "broken");
    assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
    let r = request(g.addr, "GET", "/api/x", "", b"");
    assert_eq!(
        (r.status, r.header("www-authenticate")),
        (401, Some("Bearer"))
    );
    let twice = "Authorization: Bearer good-1\r\nAuthorization: Bearer good-2\r\n";
    assert_eq!(request(g.addr, "GET", "/api/x", twice, b"").status, 400);
    assert!(
        origin.records().is_empty(),
        "nothing refused reached the origin"
    );
}

#[test]
fn wrong_client_credentials_are_a_503_not_a_pass() {
    let (origin, _auth, _dir, g) = started("shards = 1", "intruder");
    assert_eq!(get(&g, "/api/x", "good-1").status, 503);
    assert!(origin.records().is_empty());
}

#[test]
fn an_introspected_client_id_is_a_catalogue_consumer() {
    let (_origin, _auth, _dir, g) = started("shards = 2", "gateway");
    let a = admin(&g);
    let post = |path: &str, body: &str| {
        let h = format!(
            "Authorization: Bearer r00t-admin-token\r\nContent-Length: {}\r\n",
            body.len()
        );
        let r = request(a, "POST", path, &h, body.as_bytes());
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        (r.status, v["subscription"]["id"].as_u64().unwrap_or(0))
    };
    let tenant =
        r#"{"name": "acme", "admin_token": "acme-admin-token-0001", "routes": ["orders"]}"#;
    assert_eq!(post("/tenants", tenant).0, 201);
    let api = r#"{"name": "orders", "routes": ["orders"]}"#;
    assert_eq!(post("/tenants/acme/apis", api).0, 201);
    let shop = r#"{"name": "shop", "client_ids": ["app"]}"#;
    assert_eq!(post("/tenants/acme/consumers", shop).0, 201);
    let r = get(&g, "/orders", "good-7");
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("`acme/shop` has no subscription"));
    let ask = r#"{"consumer": "shop", "api": "orders"}"#;
    let (st, id) = post("/tenants/acme/subscriptions", ask);
    assert_eq!(st, 201);
    assert_eq!(
        post(&format!("/tenants/acme/subscriptions/{id}/approve"), "").0,
        200
    );
    assert_eq!(get(&g, "/orders", "good-7").status, 200);
}
