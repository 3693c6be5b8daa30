//! The transform stages through a real gateway and a scripted origin: header values from
//! templates (client address, request id, a route capture, a JWT claim), path rewrites
//! (regex with captures, prefix, template), query edits, `Host` rewrite, redirects, direct
//! answers with fields, and JSON field filtering (removed, replaced, client-chosen within
//! an allowlist, then compressed); what a transform may not write is refused at `--check`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use std::io::Read;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use support::script::{Script, send};
use support::{Gateway, request};

/// One shard, one upstream (`origin`) and `routes` (TOML `[[route]]` tables).
fn gateway(origin: &Script, routes: &str) -> Gateway {
    let text = format!(
        "[[upstream]]\nname = \"o\"\ntargets = [\"{}\"]\n\n{routes}",
        origin.addr
    );
    Gateway::start("auto", "shards = 1", &text).expect("gateway starts")
}

/// The value of field `name` in a raw request head the origin saw.
fn field<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

const OK: &str = "HTTP/1.1 200 OK\nContent-Type: text/plain";

#[test]
fn header_templates_carry_the_client_the_request_id_a_capture_and_a_jwt_claim() {
    let origin = Script::start();
    let g = gateway(
        &origin,
        r#"
[[route]]
path = "/users/{id}"
upstream = "o"
[[route.policy]]
kind = "jwt"
algorithms = ["HS256"]
secret = "k"
[[route.policy]]
kind = "headers"
request_set = { "X-Client" = "${client_ip}", "X-User" = "${param.id}", "X-Tenant" = "${jwt.tenant}", "X-Who" = "${consumer}@${jwt.tenant}" }
request_add = { "X-Rid" = "${request_id}" }
response_set = { "X-Served-For" = "${param.id} ${method}" }
"#,
    );
    let claims = json!({ "sub": "alice", "tenant": "acme", "exp": 4_000_000_000u64 });
    let token = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"k"),
    )
    .unwrap();
    origin.on("/users/42", vec![send(OK, "x")]);
    let r = request(
        g.addr,
        "GET",
        "/users/42",
        &format!("Authorization: Bearer {token}\r\nX-Request-Id: rid-7\r\nX-Tenant: spoofed\r\n"),
        b"",
    );
    assert_eq!(r.status, 200);
    let seen = origin.seen("/users/42");
    let head = &seen[0];
    assert_eq!(field(head, "x-client"), ["127.0.0.1"]);
    assert_eq!(field(head, "x-user"), ["42"]);
    assert_eq!(
        field(head, "x-tenant"),
        ["acme"],
        "set replaces the client's copy"
    );
    assert_eq!(field(head, "x-who"), ["alice@acme"]);
    // the id comes from the client only when trusted; either way it is the one sent back
    let rid = r.header("x-request-id").unwrap().to_string();
    assert_eq!(field(head, "x-rid"), [rid.as_str()]);
    assert_eq!(r.header("x-served-for"), Some("42 GET"));
}

#[test]
fn path_query_and_host_rewrites_reach_the_origin() {
    let origin = Script::start();
    let g = gateway(
        &origin,
        r#"
[[route]]
path = "/v2/users/{id}/{*rest}"
upstream = "o"
[[route.policy]]
kind = "rewrite"
regex = '^/v2/users/(\d+)/(.*)$'
replacement = "/users/$2?id=$1"
query_remove = ["debug"]
query_rename = { q = "search" }
query_add = { via = "gw" }
host = "users.internal"

[[route]]
path = "/billing/{*rest}"
upstream = "o"
[[route.policy]]
kind = "rewrite"
strip_prefix = "/billing"

[[route]]
path = "/beta/{*rest}"
upstream = "o"
[[route.policy]]
kind = "rewrite"
replace_prefix = { from = "/beta", to = "/v3" }

[[route]]
path = "/items/{id}"
upstream = "o"
[[route.policy]]
kind = "rewrite"
path = "/catalog/${param.id}/${jwt.none}"
query_set = { page = "1" }
[[route.policy]]
kind = "headers"
request_set = { "X-Path" = "${path}", "X-Item" = "${param.id}" }
"#,
    );
    let cases = [
        (
            "/v2/users/7/posts/recent?q=rust&debug=1",
            "/users/posts/recent?id=7&search=rust&via=gw",
        ),
        ("/billing/invoices/3?x=1", "/invoices/3?x=1"),
        ("/billing", "/"),
        ("/beta/a/b?c=1", "/v3/a/b?c=1"),
        ("/items/9?page=4&sort=up", "/catalog/9/?sort=up&page=1"),
    ];
    for (sent, upstream) in cases {
        origin.on(upstream, vec![send(OK, "x")]);
        let r = request(g.addr, "GET", sent, "", b"");
        assert_eq!(
            r.status, 200,
            "{sent}: the origin was not asked for {upstream}"
        );
        let seen = origin.seen(upstream);
        assert_eq!(seen.len(), 1, "{sent}");
        if sent.starts_with("/v2/") {
            assert_eq!(field(&seen[0], "host"), ["users.internal"]);
        } else {
            assert_eq!(
                field(&seen[0], "host"),
                ["test.local"],
                "{sent}: the client's Host by default"
            );
        }
        if sent.starts_with("/items/") {
            // a later stage reads the rewritten path, and the capture of the matched one
            assert_eq!(field(&seen[0], "x-path"), ["/catalog/9/"]);
            assert_eq!(field(&seen[0], "x-item"), ["9"]);
        }
    }
}

#[test]
fn redirects_and_direct_answers_never_reach_the_origin() {
    let origin = Script::start();
    let g = gateway(
        &origin,
        r#"
[[route]]
path = "/old/{*rest}"
[[route.policy]]
kind = "redirect"
status = 308
location = "https://new.test/v2/${param.rest}?from=${host}"

[[route]]
path = "/moved"
[[route.policy]]
kind = "redirect"
location = "/here"

[[route]]
path = "/maintenance"
[[route.policy]]
kind = "respond"
status = 503
body = '{"down":true}'
content_type = "application/json"
headers = { "Retry-After" = "120", "Cache-Control" = "no-store" }
"#,
    );
    let r = request(g.addr, "GET", "/old/a/b?x=1", "", b"");
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some("https://new.test/v2/a/b?from=test.local")
    );
    assert_eq!(r.header("content-length"), Some("0"));
    let r = request(g.addr, "POST", "/moved", "Content-Length: 0\r\n", b"");
    assert_eq!((r.status, r.header("location")), (302, Some("/here")));
    let r = request(g.addr, "GET", "/maintenance", "", b"");
    assert_eq!(r.status, 503);
    assert_eq!(r.body, br#"{"down":true}"#);
    assert_eq!(r.header("retry-after"), Some("120"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(origin.seen("/old/a/b?x=1").is_empty() && origin.seen("/maintenance").is_empty());
}

const FILTER: &str = r#"
[[route]]
path = "/{*rest}"
upstream = "o"
[[route.policy]]
kind = "compress"
min_size = 0
[[route.policy]]
kind = "json_fields"
allow = ["id", "name", "owner.login", "owner.email", "price"]
param = "fields"
remove = ["owner.email"]
replace = { "price" = "hidden" }
"#;

const USERS: &str = r#"[{"id":1,"name":"a","secret":"s1","owner":{"login":"al","email":"al@x","pw":"p"},"price":10},{"id":2,"name":"b","secret":"s2","owner":{"login":"bo","email":"bo@x"},"price":20}]"#;

#[test]
fn json_fields_remove_replace_and_keep_what_the_client_chose() {
    let origin = Script::start();
    let g = gateway(&origin, FILTER);
    let json_head = "HTTP/1.1 200 OK\nContent-Type: application/json\nETag: \"v1\"";
    let chunked_head =
        "HTTP/1.1 200 OK\nContent-Type: application/json\nTransfer-Encoding: chunked";
    let chunked = format!(
        "{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        40,
        &USERS[..40],
        USERS.len() - 40,
        &USERS[40..]
    );
    origin.on(
        "/users",
        vec![send(json_head, USERS), send(chunked_head, &chunked)],
    );
    for _ in 0..2 {
        let r = request(g.addr, "GET", "/users", "", b"");
        assert_eq!(r.status, 200);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v,
            json!([{"id":1,"name":"a","owner":{"login":"al"},"price":"hidden"},{"id":2,"name":"b","owner":{"login":"bo"},"price":"hidden"}]),
            "secret and owner.pw not allowed, owner.email removed, price replaced"
        );
        // the edited body has the gateway's framing
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        assert_eq!(r.header("content-length"), None);
        if let Some(etag) = r.header("etag") {
            assert_eq!(etag, "W/\"v1\"");
        }
    }
    // the client narrows the allowlist (a field outside it is ignored)
    origin.on(
        "/users?fields=id,owner.login,secret",
        vec![send(json_head, USERS)],
    );
    let r = request(
        g.addr,
        "GET",
        "/users?fields=id,owner.login,secret",
        "",
        b"",
    );
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v,
        json!([{"id":1,"owner":{"login":"al"}},{"id":2,"owner":{"login":"bo"}}])
    );
    // edited, then compressed: the decoded body is the edited one
    origin.on("/gz?fields=name", vec![send(json_head, USERS)]);
    let r = request(
        g.addr,
        "GET",
        "/gz?fields=name",
        "Accept-Encoding: gzip\r\n",
        b"",
    );
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_string(&mut plain)
        .unwrap();
    assert_eq!(plain, r#"[{"name":"a"},{"name":"b"}]"#);
    // what is not JSON, or not 2xx, or does not parse, passes as it came
    let cases = [
        ("/text", "HTTP/1.1 200 OK\nContent-Type: text/plain", USERS),
        (
            "/err",
            "HTTP/1.1 500 Oops\nContent-Type: application/json",
            USERS,
        ),
        (
            "/broken",
            "HTTP/1.1 200 OK\nContent-Type: application/json",
            "{\"id\":1,",
        ),
    ];
    for (path, head, body) in cases {
        origin.on(path, vec![send(head, body)]);
        let r = request(g.addr, "GET", path, "", b"");
        assert_eq!(r.body, body.as_bytes(), "{path}");
    }
}

#[test]
fn what_a_transform_may_not_write_is_refused_at_check_with_its_place() {
    for (stage, want) in [
        (
            "kind = \"respond\"\nheaders = { \"Transfer-Encoding\" = \"chunked\" }",
            "headers `Transfer-Encoding`: not a field name, or one the gateway writes",
        ),
        (
            "kind = \"headers\"\nrequest_set = { \"Connection\" = \"${client_ip}\" }",
            "request `Connection`: hop-by-hop, framing and Host fields are written by the gateway",
        ),
        (
            "kind = \"headers\"\nrequest_set = { \"X-A\" = \"${param.nope}\" }",
            "request `X-A`: `${param.nope}`: the route has no capture `nope` (it captures: rest)",
        ),
        (
            "kind = \"rewrite\"\nregex = \"[\"\nreplacement = \"/\"",
            "regex: regex parse error",
        ),
        (
            "kind = \"redirect\"\nstatus = 200\nlocation = \"/\"",
            "status 200 is not a redirect",
        ),
    ] {
        let dir = support::TempDir::new();
        let path = dir.0.join("t.toml");
        std::fs::write(
            &path,
            format!("[[route]]\npath = \"/{{*rest}}\"\n[[route.policy]]\n{stage}\n"),
        )
        .unwrap();
        let out = std::process::Command::new(support::bin())
            .arg("--check")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{stage}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("t.toml:3:1: route `route[0]` [[route.policy]] kind = \""),
            "{stage}: {err}"
        );
        assert!(err.contains(want), "{stage}: {err}");
    }
}
