//! `[route.aggregate]` through a real gateway and three scripted origins: the answers of
//! three calls composed into one object; one call slower than its timeout becomes an error
//! member named in the partial header (or a 502 under `on_error = "fail"`) without waiting
//! for it; `depends_on` passes a field of the first answer into the second call's path; a
//! non-JSON or non-2xx answer is a failed call; only the listed client fields are passed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::script::{Script, send, send_after};
use support::{Gateway, request};

const JSON: &str = "HTTP/1.1 200 OK\nContent-Type: application/json";

/// A gateway whose `/dash/{user}` route composes calls to `users`, `orders`, `billing`.
fn gateway(origins: [&Script; 3], on_error: &str) -> Gateway {
    let [users, orders, billing] = origins;
    let text = format!(
        r#"
[[upstream]]
name = "users"
targets = ["{}"]
[[upstream]]
name = "orders"
targets = ["{}"]
[[upstream]]
name = "billing"
targets = ["{}"]

[[route]]
path = "/dash/{{user}}"
[[route.policy]]
kind = "headers"
response_set = {{ "X-Composed" = "yes", "X-For" = "${{param.user}}" }}
[[route.policy]]
kind = "compress"
min_size = 0
[[route.policy]]
kind = "json_fields"
remove = ["profile.secret"]
[route.aggregate]
on_error = "{on_error}"
[[route.aggregate.call]]
name = "profile"
upstream = "users"
path = "/users/${{param.user}}"
headers = ["Authorization"]
[[route.aggregate.call]]
name = "orders"
upstream = "orders"
path = "/orders?user=${{param.user}}&${{query}}"
timeout = "300ms"
[[route.aggregate.call]]
name = "account"
upstream = "billing"
path = "/accounts/${{profile.account.id}}"
depends_on = "profile"
"#,
        users.addr, orders.addr, billing.addr
    );
    Gateway::start("auto", "shards = 1", &text).expect("gateway starts")
}

fn body(r: &support::Response) -> Value {
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&r.body)))
}

#[test]
fn three_calls_compose_and_the_second_reads_a_field_of_the_first() {
    let (users, orders, billing) = (Script::start(), Script::start(), Script::start());
    let g = gateway([&users, &orders, &billing], "partial");
    users.on(
        "/users/7",
        vec![send(JSON, r#"{"name":"Ann","account":{"id":"ac-9"}}"#)],
    );
    orders.on(
        "/orders?user=7&limit=2",
        vec![send(JSON, r#"[{"id":1},{"id":2}]"#)],
    );
    billing.on("/accounts/ac-9", vec![send(JSON, r#"{"balance":12.5}"#)]);
    let r = request(
        g.addr,
        "GET",
        "/dash/7?limit=2",
        "Authorization: Bearer t\r\nCookie: secret=1\r\n",
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-aggregate-partial"), None);
    assert_eq!(
        r.header("x-composed"),
        Some("yes"),
        "the route's response stages see the composed answer"
    );
    assert_eq!(
        body(&r),
        json!({"profile":{"name":"Ann","account":{"id":"ac-9"}},"orders":[{"id":1},{"id":2}],"account":{"balance":12.5}})
    );
    assert_eq!(r.header("x-for"), Some("7"));
    // the route's body stages too: json_fields removes, compress compresses
    users.on(
        "/users/8",
        vec![send(JSON, r#"{"secret":"s","account":{"id":"x"}}"#)],
    );
    orders.on("/orders?user=8&", vec![send(JSON, "[]")]);
    billing.on("/accounts/x", vec![send(JSON, "{}")]);
    let z = request(g.addr, "GET", "/dash/8", "Accept-Encoding: gzip\r\n", b"");
    assert_eq!(z.header("content-encoding"), Some("gzip"));
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&z.body[..]), &mut plain)
        .unwrap();
    assert_eq!(
        plain,
        r#"{"profile":{"account":{"id":"x"}},"orders":[],"account":{}}"#
    );
    // members in config order, bodies as the services sent them
    assert!(String::from_utf8_lossy(&r.body).starts_with(r#"{"profile":{"name":"Ann""#));
    // only the listed field (and the request id) is passed on
    let seen = users.seen("/users/7");
    assert!(
        seen[0].contains("\r\nAuthorization: Bearer t"),
        "{}",
        seen[0]
    );
    assert!(
        !seen[0].to_ascii_lowercase().contains("cookie"),
        "{}",
        seen[0]
    );
    assert!(
        seen[0].to_ascii_lowercase().contains("x-request-id: "),
        "{}",
        seen[0]
    );
    assert!(!orders.seen("/orders?user=7&limit=2")[0].contains("Authorization"));
}

#[test]
fn a_call_slower_than_its_timeout_is_an_error_member_and_is_not_waited_for() {
    let (users, orders, billing) = (Script::start(), Script::start(), Script::start());
    let g = gateway([&users, &orders, &billing], "partial");
    users.on("/users/1", vec![send(JSON, r#"{"account":{"id":5}}"#)]);
    orders.on("/orders?user=1&", vec![send_after(10_000, JSON, "[]")]);
    billing.on("/accounts/5", vec![send(JSON, "{\"balance\":0}")]);
    let started = Instant::now();
    let r = request(g.addr, "GET", "/dash/1", "", b"");
    // the slow call's 10 s are never waited for: its 300 ms timeout ends it
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-aggregate-partial"), Some("orders"));
    assert_eq!(
        r.header("cache-control"),
        Some("no-store"),
        "a partial answer is not kept"
    );
    assert_eq!(
        body(&r),
        json!({"profile":{"account":{"id":5}},"orders":{"error":"timed out"},"account":{"balance":0}})
    );
}

#[test]
fn non_json_non_2xx_and_a_failed_dependency_follow_the_partial_policy() {
    let (users, orders, billing) = (Script::start(), Script::start(), Script::start());
    let g = gateway([&users, &orders, &billing], "partial");
    users.on(
        "/users/2",
        vec![send(
            "HTTP/1.1 503 Busy\nContent-Type: application/json",
            "{}",
        )],
    );
    orders.on(
        "/orders?user=2&",
        vec![send("HTTP/1.1 200 OK\nContent-Type: text/html", "<html>")],
    );
    let r = request(g.addr, "GET", "/dash/2", "", b"");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-aggregate-partial"),
        Some("profile,orders,account")
    );
    assert_eq!(
        body(&r),
        json!({"profile":{"error":"upstream answered 503"},"orders":{"error":"upstream answer is not JSON"},"account":{"error":"`profile` failed"}})
    );
    assert!(billing.seen("/accounts/").is_empty());
    // the first answer lacks the field the second needs
    users.on("/users/3", vec![send(JSON, r#"{"account":{}}"#)]);
    orders.on("/orders?user=3&", vec![send(JSON, "[]")]);
    let r = request(g.addr, "GET", "/dash/3", "", b"");
    assert_eq!(r.header("x-aggregate-partial"), Some("account"));
    assert_eq!(
        body(&r)["account"],
        json!({"error":"field `account.id` is not in its answer"})
    );
}

#[test]
fn under_on_error_fail_one_failed_call_makes_a_502_problem() {
    let (users, orders, billing) = (Script::start(), Script::start(), Script::start());
    let g = gateway([&users, &orders, &billing], "fail");
    users.on("/users/4", vec![send(JSON, r#"{"account":{"id":1}}"#)]);
    orders.on("/orders?user=4&", vec![send_after(10_000, JSON, "[]")]);
    billing.on("/accounts/1", vec![send(JSON, "{}")]);
    let r = request(g.addr, "GET", "/dash/4", "", b"");
    assert_eq!(r.status, 502);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let v = body(&r);
    assert_eq!(v["detail"], json!("call `orders` failed: timed out"));
}

#[test]
fn a_dead_upstream_is_an_error_member_and_bad_aggregates_are_refused_at_check() {
    let users = Script::start();
    let dead = support::origin::closed_port();
    let text = format!(
        "[[upstream]]\nname = \"u\"\ntargets = [\"{}\"]\n[[upstream]]\nname = \"dead\"\ntargets = [\"{dead}\"]\n[[route]]\npath = \"/d\"\n[route.aggregate]\n[[route.aggregate.call]]\nname = \"a\"\nupstream = \"u\"\npath = \"/a\"\n[[route.aggregate.call]]\nname = \"b\"\nupstream = \"dead\"\npath = \"/b\"\n",
        users.addr
    );
    let g = Gateway::start("auto", "shards = 1", &text).unwrap();
    users.on("/a", vec![send(JSON, "1")]);
    let r = request(g.addr, "GET", "/d", "", b"");
    assert_eq!(r.header("x-aggregate-partial"), Some("b"));
    assert_eq!(
        body(&r),
        json!({"a":1,"b":{"error":"upstream unreachable"}})
    );

    let base =
        "[[upstream]]\nname = \"u\"\ntargets = [\"127.0.0.1:9\"]\n[[route]]\npath = \"/d/{id}\"\n";
    for (rest, want) in [
        (
            "upstream = \"u\"\n[route.aggregate]\n[[route.aggregate.call]]\nname = \"a\"\nupstream = \"u\"\npath = \"/a\"\n",
            "it takes no `upstream`",
        ),
        (
            "[route.aggregate]\non_error = \"ignore\"\n[[route.aggregate.call]]\nname = \"a\"\nupstream = \"u\"\npath = \"/a\"\n",
            "on_error `ignore`: expected \"partial\" or \"fail\"",
        ),
        (
            "[route.aggregate]\n[[route.aggregate.call]]\nname = \"a\"\nupstream = \"nope\"\npath = \"/a\"\n",
            "unknown upstream `nope`",
        ),
        (
            "[route.aggregate]\n[[route.aggregate.call]]\nname = \"a\"\nupstream = \"u\"\npath = \"/a\"\ndepends_on = \"b\"\n",
            "depends_on `b`: no such call",
        ),
        (
            "[route.aggregate]\n[[route.aggregate.call]]\nname = \"a\"\nupstream = \"u\"\npath = \"/a/${param.user}\"\n",
            "call `a`: path: `${param.user}`: the route has no capture `user` (it captures: id)",
        ),
        (
            "[route.aggregate]\n[[route.aggregate.call]]\nname = \"a\"\nupstream = \"u\"\npath = \"/a\"\nheaders = [\"Connection\"]\n",
            "`Connection` is written by the gateway",
        ),
    ] {
        let dir = support::TempDir::new();
        let path = dir.0.join("t.toml");
        std::fs::write(&path, format!("{base}{rest}")).unwrap();
        let out = std::process::Command::new(support::bin())
            .arg("--check")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{rest}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("t.toml:") && err.contains(want),
            "{rest}: {err}"
        );
    }
}
