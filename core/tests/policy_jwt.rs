//! The jwt stage through a real shardgate: valid tokens of each key family pass with their
//! claims forwarded (spoofed copies dropped); every hostile token — `alg: none`, HS256 signed
//! with the RSA public key, expired, not yet valid, wrong issuer or audience, tampered,
//! malformed, unknown `kid`, oversized — gets 401 with an RFC 6750 challenge and never reaches
//! the origin.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use support::origin::Origin;
use support::{Gateway, Response, eventually, request};

const RSA_PRIVATE: &[u8] = include_bytes!("keys/rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("keys/rsa_public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("keys/ec_private.pem");
const EC_PUBLIC: &str = include_str!("keys/ec_public.pem");
const ED_PRIVATE: &[u8] = include_bytes!("keys/ed_private.pem");
const ED_PUBLIC: &str = include_str!("keys/ed_public.pem");

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Value {
    json!({ "sub": "alice", "iss": "https://auth.test", "aud": "api", "exp": now() + 600, "scope": "read write" })
}

fn token(alg: Algorithm, key: &EncodingKey, claims: &Value, kid: Option<&str>) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    encode(&h, claims, key).unwrap()
}

fn b64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A gateway in `dir` with the jwt stage configured by `stage` (extra files written first).
fn start(
    origin: &Origin,
    stage: &str,
    files: &[(&str, &str)],
    server: &str,
) -> (Gateway, support::TempDir) {
    let dir = support::TempDir::new();
    for (name, content) in files {
        std::fs::write(dir.0.join(name), content).unwrap();
    }
    // key paths are relative to the config file; the support gateway writes its config in its
    // own directory, so absolute paths are used here
    let stage = stage.replace("@DIR@", &dir.0.display().to_string());
    let conf = support::route_all_policy(
        origin.addr,
        &format!("[[route.policy]]\nkind = \"jwt\"\n{stage}"),
    );
    let g = Gateway::start("epoll", &format!("shards = 1\n{server}"), &conf).unwrap();
    (g, dir)
}

fn bearer(g: &Gateway, token: &str) -> Response {
    request(
        g.addr,
        "GET",
        "/p",
        &format!("Authorization: Bearer {token}\r\nX-Consumer-Id: mallory\r\n"),
        b"",
    )
}

fn assert_invalid(r: &Response, description: &str) {
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            format!("Bearer error=\"invalid_token\", error_description=\"{description}\"").as_str()
        ),
        "{r:?}"
    );
}

#[test]
fn rs256_tokens_pass_and_hostile_ones_are_refused() {
    let origin = Origin::start();
    let stage = "algorithms = [\"RS256\"]\npublic_key_file = \"@DIR@/pub.pem\"\nissuer = [\"https://auth.test\"]\naudience = [\"api\"]\nleeway = \"0s\"\n";
    let (g, _dir) = start(&origin, stage, &[("pub.pem", RSA_PUBLIC)], "");
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();

    let good = token(Algorithm::RS256, &rsa, &claims(), None);
    for _ in 0..2 {
        // the second time from the verified-token cache
        assert_eq!(bearer(&g, &good).status, 200);
        let rec = origin.records().pop().unwrap();
        assert_eq!(
            rec.header("x-consumer-id").as_deref(),
            Some("alice"),
            "{}",
            rec.head
        );
        assert!(
            !rec.head.contains("mallory"),
            "the spoofed header is dropped: {}",
            rec.head
        );
    }
    origin.reset_counts();

    let missing = request(g.addr, "GET", "/p", "", b"");
    assert_eq!(missing.status, 401);
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));

    // alg: none
    let none = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(claims().to_string().as_bytes())
    );
    assert_invalid(&bearer(&g, &none), "malformed token");
    // HS256 with the RSA public key as the HMAC secret (algorithm confusion)
    let confused = token(
        Algorithm::HS256,
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
        &claims(),
        None,
    );
    assert_invalid(&bearer(&g, &confused), "algorithm not accepted");
    // an accepted family but another algorithm than configured
    let rs512 = token(Algorithm::RS512, &rsa, &claims(), None);
    assert_invalid(&bearer(&g, &rs512), "algorithm not accepted");
    let mut c = claims();
    c["exp"] = json!(now() - 10);
    assert_invalid(
        &bearer(&g, &token(Algorithm::RS256, &rsa, &c, None)),
        "token expired",
    );
    let mut c = claims();
    c["nbf"] = json!(now() + 300);
    assert_invalid(
        &bearer(&g, &token(Algorithm::RS256, &rsa, &c, None)),
        "token not yet valid",
    );
    let mut c = claims();
    c["iss"] = json!("https://evil.test");
    assert_invalid(
        &bearer(&g, &token(Algorithm::RS256, &rsa, &c, None)),
        "issuer not accepted",
    );
    let mut c = claims();
    c["aud"] = json!("other");
    assert_invalid(
        &bearer(&g, &token(Algorithm::RS256, &rsa, &c, None)),
        "audience not accepted",
    );
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    assert_invalid(
        &bearer(&g, &token(Algorithm::RS256, &rsa, &c, None)),
        "a required claim is missing",
    );
    // tampered payload: the signature no longer matches
    let parts: Vec<&str> = good.split('.').collect();
    let mut c = claims();
    c["sub"] = json!("admin");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64url(c.to_string().as_bytes()),
        parts[2]
    );
    assert_invalid(&bearer(&g, &tampered), "signature does not verify");
    assert_invalid(&bearer(&g, "abc.!!!.def"), "malformed token");
    assert_invalid(&bearer(&g, "not-a-jwt"), "malformed token");
    assert!(
        origin.records().is_empty(),
        "nothing refused reached the origin"
    );
}

#[test]
fn an_oversized_token_is_refused_unread() {
    let origin = Origin::start();
    let server = "client_buffer = \"128KiB\"\nmax_head = \"128KiB\"";
    let (g, _dir) = start(
        &origin,
        "algorithms = [\"HS256\"]\nsecret = \"k\"\n",
        &[],
        server,
    );
    let huge = format!(
        "{}.{}.{}",
        "a".repeat(100),
        "b".repeat(64 * 1024),
        "c".repeat(43)
    );
    assert_invalid(&bearer(&g, &huge), "token too long");
    assert!(origin.records().is_empty());
}

#[test]
fn ec_pss_hmac_and_eddsa_keys_and_other_token_places() {
    let origin = Origin::start();
    let ec = EncodingKey::from_ec_pem(EC_PRIVATE).unwrap();
    let (g, _d) = start(
        &origin,
        "algorithms = [\"ES256\"]\npublic_key_file = \"@DIR@/ec.pem\"\n",
        &[("ec.pem", EC_PUBLIC)],
        "",
    );
    assert_eq!(
        bearer(&g, &token(Algorithm::ES256, &ec, &claims(), None)).status,
        200
    );
    drop(g);

    // RSA-PSS, and HS384 and HS512 accepted together
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let (g, _d) = start(
        &origin,
        "algorithms = [\"PS256\", \"PS512\"]\npublic_key_file = \"@DIR@/rsa.pem\"\n",
        &[("rsa.pem", RSA_PUBLIC)],
        "",
    );
    for alg in [Algorithm::PS256, Algorithm::PS512] {
        assert_eq!(
            bearer(&g, &token(alg, &rsa, &claims(), None)).status,
            200,
            "{alg:?}"
        );
    }
    assert_invalid(
        &bearer(&g, &token(Algorithm::RS256, &rsa, &claims(), None)),
        "algorithm not accepted",
    );
    drop(g);
    let (g, _d) = start(
        &origin,
        "algorithms = [\"HS384\", \"HS512\"]\nsecret = \"s\"\n",
        &[],
        "",
    );
    let hs = EncodingKey::from_secret(b"s");
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        assert_eq!(
            bearer(&g, &token(alg, &hs, &claims(), None)).status,
            200,
            "{alg:?}"
        );
    }
    drop(g);

    let ed = EncodingKey::from_ed_pem(ED_PRIVATE).unwrap();
    let stage = "algorithms = [\"EdDSA\"]\npublic_key_file = \"@DIR@/ed.pem\"\ntoken_from = [\"cookie:session\", \"query:access_token\"]\nforward_claims = { sub = \"X-User\", scope = \"X-Scopes\" }\n";
    let (g, _d) = start(&origin, stage, &[("ed.pem", ED_PUBLIC)], "");
    let t = token(Algorithm::EdDSA, &ed, &claims(), None);
    origin.reset_counts();
    let r = request(
        g.addr,
        "GET",
        "/c",
        &format!("Cookie: theme=dark; session={t}\r\n"),
        b"",
    );
    assert_eq!(r.status, 200);
    let rec = origin.records().pop().unwrap();
    assert_eq!(rec.header("x-user").as_deref(), Some("alice"));
    assert_eq!(rec.header("x-scopes").as_deref(), Some("read write"));
    let r = request(g.addr, "GET", &format!("/q?a=1&access_token={t}"), "", b"");
    assert_eq!(r.status, 200);
    assert_eq!(
        origin.records().pop().unwrap().target,
        "/q?a=1",
        "the token is stripped from the query"
    );
}

/// A JWKS document holding the RSA test key once per kid.
fn rsa_jwks(rsa: &EncodingKey, kids: &[&str]) -> String {
    let keys: Vec<_> = kids
        .iter()
        .map(|kid| {
            let mut j = jsonwebtoken::jwk::Jwk::from_encoding_key(rsa, Algorithm::RS256).unwrap();
            j.common.key_id = Some(kid.to_string());
            j
        })
        .collect();
    json!({ "keys": keys }).to_string()
}

#[test]
fn an_unknown_kid_rereads_the_jwks_file() {
    let origin = Origin::start();
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let set = |kids: &[&str]| rsa_jwks(&rsa, kids);
    let stage =
        "algorithms = [\"RS256\"]\njwks_file = \"@DIR@/jwks.json\"\njwks_refresh = \"0s\"\n";
    let (g, dir) = start(&origin, stage, &[("jwks.json", &set(&["k1"]))], "");
    assert_eq!(
        bearer(&g, &token(Algorithm::RS256, &rsa, &claims(), Some("k1"))).status,
        200
    );
    let k2 = token(Algorithm::RS256, &rsa, &claims(), Some("k2"));
    assert_invalid(&bearer(&g, &k2), "no key for this token");
    // the issuer rotates: k2 appears in the file; an unknown kid makes the shard read it
    // again in the background (never inside the request), so k2 is accepted soon after
    std::fs::write(dir.0.join("jwks.json"), set(&["k1", "k2"])).unwrap();
    assert!(eventually(|| bearer(&g, &k2).status == 200));
    // a broken file keeps the last good set
    std::fs::write(dir.0.join("jwks.json"), "{ not json").unwrap();
    assert_invalid(
        &bearer(&g, &token(Algorithm::RS256, &rsa, &claims(), Some("k3"))),
        "no key for this token",
    );
    assert_eq!(
        bearer(&g, &token(Algorithm::RS256, &rsa, &claims(), Some("k1"))).status,
        200
    );
}

/// A JWKS server on 127.0.0.1: serves the current document (or a 500 when it is empty) and
/// counts fetches.
struct JwksServer {
    addr: std::net::SocketAddr,
    doc: std::sync::Arc<std::sync::Mutex<String>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl JwksServer {
    fn start(doc: String) -> JwksServer {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let doc = std::sync::Arc::new(std::sync::Mutex::new(doc));
        let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (d, f) = (doc.clone(), fetches.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                f.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = d.lock().unwrap().clone();
                let resp = if body.is_empty() {
                    "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = s.write_all(resp.as_bytes());
            }
        });
        JwksServer { addr, doc, fetches }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[test]
fn a_jwks_url_is_fetched_in_the_background_and_on_unknown_kids() {
    let origin = Origin::start();
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let set = |kids: &[&str]| rsa_jwks(&rsa, kids);
    let server = JwksServer::start(set(&["k1"]));
    let stage = format!(
        "algorithms = [\"RS256\"]\njwks_url = \"http://{}/.well-known/jwks.json\"\njwks_interval = \"1h\"\njwks_refresh = \"0s\"\n",
        server.addr
    );
    let (g, _dir) = start(&origin, &stage, &[], "");
    let k1 = token(Algorithm::RS256, &rsa, &claims(), Some("k1"));
    assert!(
        eventually(|| bearer(&g, &k1).status == 200),
        "the first fetch happens at start"
    );
    let before = server.fetches();

    // an unknown kid: refused now, and a refresh is asked for
    let k2 = token(Algorithm::RS256, &rsa, &claims(), Some("k2"));
    assert_invalid(&bearer(&g, &k2), "no key for this token");
    assert!(
        eventually(|| server.fetches() > before),
        "an unknown kid triggers a fetch"
    );
    // the issuer rotates in k2: accepted once fetched
    *server.doc.lock().unwrap() = set(&["k1", "k2"]);
    assert!(eventually(|| bearer(&g, &k2).status == 200));
    // the server fails: the last good set stays in force
    *server.doc.lock().unwrap() = String::new();
    let failing = server.fetches();
    let k3 = token(Algorithm::RS256, &rsa, &claims(), Some("k3"));
    assert_invalid(&bearer(&g, &k3), "no key for this token");
    assert!(eventually(|| server.fetches() > failing));
    assert_eq!(bearer(&g, &k1).status, 200);
    assert_eq!(bearer(&g, &k2).status, 200);
}

/// A token with this JOSE header (any JSON), signed HS256 with `secret`.
fn with_header(header: &Value, secret: &str) -> String {
    let message = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims().to_string().as_bytes())
    );
    let key = EncodingKey::from_secret(secret.as_bytes());
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
    format!("{message}.{sig}")
}

/// Issue 9: a token given more than once is ambiguous and refused (400 invalid_request,
/// RFC 6750 §3.1) before the upstream sees anything: two Authorization fields (one valid),
/// a token in two configured places, a cookie or query parameter repeated.
#[test]
fn issue_9_a_token_given_twice_is_refused() {
    let origin = Origin::start();
    let stage = "algorithms = [\"HS256\"]\nsecret = \"k\"\ntoken_from = [\"header:Authorization\", \"cookie:session\", \"query:access_token\"]\n";
    let (g, _dir) = start(&origin, stage, &[], "");
    let good = token(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"k"),
        &claims(),
        None,
    );
    let bad = token(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"other"),
        &claims(),
        None,
    );
    let get = |path: &str, headers: String| request(g.addr, "GET", path, &headers, b"");
    assert_eq!(
        get("/p", format!("Authorization: Bearer {good}\r\n")).status,
        200
    );
    origin.reset_counts();
    let rows = [
        (
            "/p",
            format!("Authorization: Bearer {good}\r\nAuthorization: Bearer {bad}\r\n"),
        ),
        (
            "/p",
            format!("Authorization: Bearer {bad}\r\nAuthorization: Bearer {good}\r\n"),
        ),
        (
            "/p",
            format!("Authorization: Bearer {good}\r\nAuthorization: Bearer {good}\r\n"),
        ),
        (
            "/p",
            format!("Authorization: Bearer {good}\r\nCookie: session={good}\r\n"),
        ),
        ("/p", format!("Cookie: session={good}; session={bad}\r\n")),
        (
            "/p",
            format!("Cookie: session={good}\r\nCookie: session={good}\r\n"),
        ),
        (
            &format!("/p?access_token={good}&access_token={good}"),
            String::new(),
        ),
        (
            &format!("/p?access_token={good}"),
            format!("Authorization: Bearer {good}\r\n"),
        ),
    ];
    for (path, headers) in &rows {
        let r = get(path, headers.clone());
        assert_eq!(r.status, 400, "{path} {headers}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer error=\"invalid_request\""),
            "{headers}"
        );
    }
    assert!(
        origin.records().is_empty(),
        "nothing refused reached the upstream"
    );
}

/// Issue 9: with one key (a secret or PEM, no key ids) a token's `kid` selects nothing and
/// is not a reason to refuse; with `kid` configured the token must name it.
#[test]
fn issue_9_kid_with_a_single_configured_key() {
    let origin = Origin::start();
    let key = EncodingKey::from_secret(b"k");
    for (stage, kid, want) in [
        ("secret = \"k\"\n", Some("anything"), 200),
        ("secret = \"k\"\n", None, 200),
        ("secret = \"k\"\nkid = \"k1\"\n", Some("k1"), 200),
        ("secret = \"k\"\nkid = \"k1\"\n", Some("k2"), 401),
        ("secret = \"k\"\nkid = \"k1\"\n", None, 401),
    ] {
        let (g, _dir) = start(
            &origin,
            &format!("algorithms = [\"HS256\"]\n{stage}"),
            &[],
            "",
        );
        let r = bearer(&g, &token(Algorithm::HS256, &key, &claims(), kid));
        assert_eq!(r.status, want, "{stage} kid {kid:?}");
    }
    // the PEM key of the RS256 tests, with a kid that names nothing
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let (g, _dir) = start(
        &origin,
        "algorithms = [\"RS256\"]\npublic_key_file = \"@DIR@/pub.pem\"\n",
        &[("pub.pem", RSA_PUBLIC)],
        "",
    );
    let t = token(Algorithm::RS256, &rsa, &claims(), Some("rotated-2026"));
    assert_eq!(bearer(&g, &t).status, 200);
}

/// Issue 9: RFC 7515 §4.1.11 `crit` (this stage understands no extension, so any `crit` is
/// invalid: empty, naming a registered or absent parameter, a name twice, an unknown
/// extension) and RFC 7797 `b64: false` are refused; the same token without them passes.
#[test]
fn issue_9_crit_and_b64_in_the_jose_header_are_refused() {
    let origin = Origin::start();
    let (g, _dir) = start(
        &origin,
        "algorithms = [\"HS256\"]\nsecret = \"k\"\n",
        &[],
        "",
    );
    let plain = with_header(&json!({"alg": "HS256", "typ": "JWT"}), "k");
    assert_eq!(bearer(&g, &plain).status, 200);
    origin.reset_counts();
    for header in [
        json!({"alg": "HS256", "crit": []}),
        json!({"alg": "HS256", "crit": ["exp"]}),
        json!({"alg": "HS256", "crit": ["alg"]}),
        json!({"alg": "HS256", "crit": ["missing"]}),
        json!({"alg": "HS256", "crit": ["ext", "ext"], "ext": "1"}),
        json!({"alg": "HS256", "crit": ["ext"], "ext": "1"}),
        json!({"alg": "HS256", "crit": ["b64"], "b64": false}),
        json!({"alg": "HS256", "b64": false}),
        json!({"alg": "HS256", "crit": "ext", "ext": "1"}),
    ] {
        let r = bearer(&g, &with_header(&header, "k"));
        assert_eq!(r.status, 401, "{header}");
    }
    assert!(
        origin.records().is_empty(),
        "nothing refused reached the upstream"
    );
}

/// A JWKS URL over https, verified against `jwks_ca`: the keys are fetched and used; with
/// another CA the fetch fails (and tokens are refused, nothing reaches the upstream).
#[test]
fn a_jwks_url_over_https_is_fetched_with_its_ca() {
    let origin = Origin::start();
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let doc = rsa_jwks(&rsa, &["k1"]);
    let ca = support::tls::Ca::new("auth CA");
    let other = support::tls::Ca::new("other CA");
    let cert = ca.issue("auth", &["127.0.0.1"], false);
    let server = support::tls::origin_with(&cert, move |_| doc.clone().into_bytes());
    let k1 = token(Algorithm::RS256, &rsa, &claims(), Some("k1"));
    for (ca_pem, want) in [(ca.pem(), 200), (other.pem(), 401)] {
        let stage = format!(
            "algorithms = [\"RS256\"]\njwks_url = \"https://127.0.0.1:{}/jwks\"\njwks_ca = \"@DIR@/ca.pem\"\njwks_refresh = \"0s\"\n",
            server.port()
        );
        let (g, _dir) = start(&origin, &stage, &[("ca.pem", &ca_pem)], "");
        if want == 200 {
            assert!(
                eventually(|| bearer(&g, &k1).status == 200),
                "fetched over https"
            );
        } else {
            // give the fetch time to fail, then the token is still refused
            assert!(eventually(|| g
                .log_lines()
                .iter()
                .any(|l| l.contains("jwks_url https://"))));
            assert_eq!(bearer(&g, &k1).status, 401);
        }
    }
}

/// An OIDC issuer on 127.0.0.1: its metadata and JWKS by path, the metadata counted.
fn oidc_server(
    rsa: &EncodingKey,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::io::Write;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let issuer = format!("http://{addr}/realms/main");
    let meta = format!(r#"{{"issuer": "{issuer}", "jwks_uri": "{issuer}/protocol/certs"}}"#);
    let jwks = rsa_jwks(rsa, &["k1"]);
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let a = asked.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = Vec::new();
            let _ = support::read_head_end(&mut s, &mut buf);
            let head = String::from_utf8_lossy(&buf).to_string();
            let body = if head.starts_with("GET /realms/main/.well-known/openid-configuration ") {
                a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                meta.clone()
            } else if head.starts_with("GET /realms/main/protocol/certs ") {
                jwks.clone()
            } else {
                String::new()
            };
            let status = if body.is_empty() { "404 No" } else { "200 OK" };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes());
        }
    });
    (addr, asked)
}

#[test]
fn an_oidc_issuers_metadata_names_the_jwks_and_its_issuer_is_required() {
    let origin = Origin::start();
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let (addr, asked) = oidc_server(&rsa);
    let issuer = format!("http://{addr}/realms/main");
    let stage =
        format!("algorithms = [\"RS256\"]\noidc_issuer = \"{issuer}\"\njwks_refresh = \"0s\"\n");
    let (g, _dir) = start(&origin, &stage, &[], "");
    let mut ours = claims();
    ours["iss"] = Value::String(issuer.clone());
    let good = token(Algorithm::RS256, &rsa, &ours, Some("k1"));
    assert!(
        eventually(|| bearer(&g, &good).status == 200),
        "metadata, then the JWKS it names"
    );
    assert!(asked.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert!(
        g.log_lines()
            .iter()
            .any(|l| l.contains("oidc_issuer http://"))
    );
    // a token of another issuer (or none), signed with the same key, is refused
    let mut theirs = claims();
    theirs["iss"] = Value::String("http://elsewhere/realm".into());
    assert_eq!(
        bearer(&g, &token(Algorithm::RS256, &rsa, &theirs, Some("k1"))).status,
        401
    );
    assert_eq!(
        bearer(&g, &token(Algorithm::RS256, &rsa, &claims(), Some("k1"))).status,
        401
    );
}
