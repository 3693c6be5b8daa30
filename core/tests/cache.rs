//! The `cache` stage through a real gateway and a scripted origin that counts what reaches it,
//! written as a table the way public cache conformance suites are: each row a request
//! sequence, the origin's answers, and what the client must see (RFC 9111 section cited).
//! Time is an input: staleness comes from the origin's `Age`, `Date` and `Expires`, never
//! from waiting.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use support::script::{Answer, Script, send, send_after};
use support::{Gateway, Response, admin, request};

/// One request of a row and what must come of it.
struct Step {
    method: &'static str,
    headers: &'static str,
    /// The origin's answer when the request must reach it; `None`: it must not.
    origin: Option<Answer>,
    status: u16,
    /// The body the client gets (`None`: not checked).
    body: Option<&'static str>,
    /// What `Cache-Status` must contain (`""`: not checked).
    cache_status: &'static str,
    /// A field line the request that reached the origin must have carried (`""`: none).
    upstream_has: &'static str,
}

const fn get(origin: Option<Answer>, status: u16, body: &'static str, cs: &'static str) -> Step {
    Step {
        method: "GET",
        headers: "",
        origin,
        status,
        body: Some(body),
        cache_status: cs,
        upstream_has: "",
    }
}

fn ok(fields: &str, body: &str) -> Option<Answer> {
    let head = if fields.is_empty() {
        "HTTP/1.1 200 OK".to_string()
    } else {
        format!("HTTP/1.1 200 OK\n{fields}")
    };
    Some(send(&head, body))
}

struct Row {
    name: &'static str,
    rfc: &'static str,
    steps: Vec<Step>,
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            name: "a fresh response is served from the cache",
            rfc: "9111 §4.2",
            steps: vec![
                get(
                    ok("Cache-Control: max-age=100", "a"),
                    200,
                    "a",
                    "fwd=uri-miss; stored",
                ),
                get(None, 200, "a", "hit; ttl="),
            ],
        },
        Row {
            name: "a response past its lifetime is not served unvalidated",
            rfc: "9111 §4.2.3 (Age)",
            steps: vec![
                get(
                    ok("Cache-Control: max-age=100\nAge: 150", "old"),
                    200,
                    "old",
                    "stored",
                ),
                get(
                    ok("Cache-Control: max-age=100", "new"),
                    200,
                    "new",
                    "fwd=stale",
                ),
                get(None, 200, "new", "hit"),
            ],
        },
        Row {
            name: "Date in the past ages the response",
            rfc: "9111 §4.2.3 (apparent age)",
            steps: vec![
                get(
                    ok("Cache-Control: max-age=100\nDate: {date-200}", "d1"),
                    200,
                    "d1",
                    "stored",
                ),
                get(
                    ok("Cache-Control: max-age=100\nDate: {date}", "d2"),
                    200,
                    "d2",
                    "fwd=stale",
                ),
            ],
        },
        Row {
            name: "no-store is never stored",
            rfc: "9111 §5.2.2.5",
            steps: vec![
                get(
                    ok("Cache-Control: no-store, max-age=100", "x"),
                    200,
                    "x",
                    "detail=no-store",
                ),
                get(
                    ok("Cache-Control: no-store, max-age=100", "y"),
                    200,
                    "y",
                    "fwd=uri-miss",
                ),
            ],
        },
        Row {
            name: "private is not stored by a shared cache",
            rfc: "9111 §5.2.2.7",
            steps: vec![
                get(
                    ok("Cache-Control: private, max-age=100", "x"),
                    200,
                    "x",
                    "detail=private",
                ),
                get(ok("Cache-Control: private, max-age=100", "y"), 200, "y", ""),
            ],
        },
        Row {
            name: "no-cache is stored but always revalidated",
            rfc: "9111 §5.2.2.4",
            steps: vec![
                get(
                    ok(
                        "Cache-Control: no-cache, max-age=100\nETag: \"v1\"",
                        "body1",
                    ),
                    200,
                    "body1",
                    "stored",
                ),
                Step {
                    upstream_has: "If-None-Match: \"v1\"",
                    ..get(
                        Some(send(
                            "HTTP/1.1 304 Not Modified\nETag: \"v1\"\nCache-Control: no-cache, max-age=100",
                            "",
                        )),
                        200,
                        "body1",
                        "fwd=stale; fwd-status=304",
                    )
                },
            ],
        },
        Row {
            name: "must-revalidate: a stale entry is not served even when the client allows stale",
            rfc: "9111 §5.2.2.2",
            steps: vec![
                get(
                    ok("Cache-Control: max-age=1, must-revalidate\nAge: 5", "m1"),
                    200,
                    "m1",
                    "stored",
                ),
                Step {
                    headers: "Cache-Control: max-stale=1000\r\n",
                    ..get(
                        ok("Cache-Control: max-age=1, must-revalidate", "m2"),
                        200,
                        "m2",
                        "fwd=stale",
                    )
                },
            ],
        },
        Row {
            name: "without must-revalidate, max-stale lets a stale entry be served",
            rfc: "9111 §5.2.1.2",
            steps: vec![
                get(
                    ok("Cache-Control: max-age=1\nAge: 5", "s1"),
                    200,
                    "s1",
                    "stored",
                ),
                Step {
                    headers: "Cache-Control: max-stale=1000\r\n",
                    ..get(None, 200, "s1", "hit; ttl=-")
                },
            ],
        },
        Row {
            name: "s-maxage wins over max-age in a shared cache",
            rfc: "9111 §5.2.2.10",
            steps: vec![
                get(
                    ok("Cache-Control: max-age=0, s-maxage=100", "sm"),
                    200,
                    "sm",
                    "stored",
                ),
                get(None, 200, "sm", "hit"),
            ],
        },
        Row {
            name: "Expires after Date gives freshness",
            rfc: "9111 §5.3",
            steps: vec![
                get(
                    ok("Date: {date}\nExpires: {date+100}", "e"),
                    200,
                    "e",
                    "stored",
                ),
                get(None, 200, "e", "hit"),
            ],
        },
        Row {
            name: "an Expires in the past (or unreadable) is stale",
            rfc: "9111 §5.3",
            steps: vec![
                get(ok("Date: {date}\nExpires: 0", "e1"), 200, "e1", "stored"),
                get(
                    ok("Date: {date}\nExpires: {date+100}", "e2"),
                    200,
                    "e2",
                    "fwd=stale",
                ),
            ],
        },
        Row {
            name: "heuristic freshness for a 200 with Last-Modified",
            rfc: "9111 §4.2.2",
            steps: vec![
                get(ok("Last-Modified: {date-10000}", "h"), 200, "h", "stored"),
                get(None, 200, "h", "hit"),
            ],
        },
        Row {
            name: "no heuristic freshness for a status not cacheable by default",
            rfc: "9111 §4.2.2, 9110 §15.1",
            steps: vec![
                get(
                    Some(send(
                        "HTTP/1.1 302 Found\nLocation: /x\nLast-Modified: {date-10000}",
                        "r",
                    )),
                    302,
                    "r",
                    "detail=no-freshness",
                ),
                get(
                    Some(send("HTTP/1.1 302 Found\nLocation: /x", "r")),
                    302,
                    "r",
                    "",
                ),
            ],
        },
        Row {
            name: "Vary keeps variants apart",
            rfc: "9111 §4.1",
            steps: vec![
                Step {
                    headers: "Accept-Language: en\r\n",
                    ..get(
                        ok("Cache-Control: max-age=100\nVary: Accept-Language", "hello"),
                        200,
                        "hello",
                        "stored",
                    )
                },
                Step {
                    headers: "Accept-Language: fr\r\n",
                    ..get(
                        ok(
                            "Cache-Control: max-age=100\nVary: Accept-Language",
                            "bonjour",
                        ),
                        200,
                        "bonjour",
                        "fwd=vary-miss",
                    )
                },
                Step {
                    headers: "Accept-Language: en\r\n",
                    ..get(None, 200, "hello", "hit")
                },
                Step {
                    headers: "Accept-Language: fr\r\n",
                    ..get(None, 200, "bonjour", "hit")
                },
            ],
        },
        Row {
            name: "Vary: * is never served from the cache",
            rfc: "9111 §4.1",
            steps: vec![
                get(
                    ok("Cache-Control: max-age=100\nVary: *", "v"),
                    200,
                    "v",
                    "detail=vary-star",
                ),
                get(
                    ok("Cache-Control: max-age=100\nVary: *", "v"),
                    200,
                    "v",
                    "fwd=uri-miss",
                ),
            ],
        },
        Row {
            name: "a request with Authorization is not stored unless the response allows it",
            rfc: "9111 §3.5",
            steps: vec![
                Step {
                    headers: "Authorization: Bearer x\r\n",
                    ..get(
                        ok("Cache-Control: max-age=100", "secret"),
                        200,
                        "secret",
                        "detail=authorization",
                    )
                },
                get(
                    ok("Cache-Control: max-age=100", "open"),
                    200,
                    "open",
                    "stored",
                ),
                Step {
                    headers: "Authorization: Bearer x\r\n",
                    ..get(
                        ok("Cache-Control: max-age=100", "mine"),
                        200,
                        "mine",
                        "fwd=bypass",
                    )
                },
            ],
        },
        Row {
            name: "public lets a response to an authorized request be stored and shared",
            rfc: "9111 §3.5",
            steps: vec![
                Step {
                    headers: "Authorization: Bearer x\r\n",
                    ..get(
                        ok("Cache-Control: public, max-age=100", "pub"),
                        200,
                        "pub",
                        "stored",
                    )
                },
                Step {
                    headers: "Authorization: Bearer y\r\n",
                    ..get(None, 200, "pub", "hit")
                },
            ],
        },
        Row {
            name: "Set-Cookie responses are not stored by default",
            rfc: "9111 §7.3 (route choice)",
            steps: vec![
                get(
                    ok("Cache-Control: max-age=100\nSet-Cookie: s=1", "c"),
                    200,
                    "c",
                    "detail=set-cookie",
                ),
                get(
                    ok("Cache-Control: max-age=100\nSet-Cookie: s=2", "c"),
                    200,
                    "c",
                    "",
                ),
            ],
        },
        Row {
            name: "a 304 on revalidation updates the stored fields and freshness",
            rfc: "9111 §4.3.4",
            steps: vec![
                get(
                    ok(
                        "Cache-Control: max-age=0\nETag: \"r1\"\nX-Version: 1",
                        "stable",
                    ),
                    200,
                    "stable",
                    "stored",
                ),
                Step {
                    upstream_has: "If-None-Match: \"r1\"",
                    ..get(
                        Some(send(
                            "HTTP/1.1 304 Not Modified\nETag: \"r1\"\nCache-Control: max-age=100\nX-Version: 2",
                            "",
                        )),
                        200,
                        "stable",
                        "fwd-status=304",
                    )
                },
                get(None, 200, "stable", "hit"),
            ],
        },
        Row {
            name: "a client's If-None-Match is answered 304 from the cache",
            rfc: "9111 §4.3.2, 9110 §13.1.2",
            steps: vec![
                get(
                    ok("Cache-Control: max-age=100\nETag: \"c1\"", "full"),
                    200,
                    "full",
                    "stored",
                ),
                Step {
                    headers: "If-None-Match: \"c0\", W/\"c1\"\r\n",
                    body: Some(""),
                    ..get(None, 304, "", "hit")
                },
                Step {
                    headers: "If-None-Match: \"other\"\r\n",
                    ..get(None, 200, "full", "hit")
                },
            ],
        },
        Row {
            name: "a client's If-Modified-Since is answered 304 from the cache",
            rfc: "9111 §4.3.2, 9110 §13.1.3",
            steps: vec![
                get(
                    ok(
                        "Cache-Control: max-age=100\nLast-Modified: Tue, 01 Dec 2026 10:00:00 GMT",
                        "lm",
                    ),
                    200,
                    "lm",
                    "stored",
                ),
                Step {
                    headers: "If-Modified-Since: Tue, 01 Dec 2026 10:00:00 GMT\r\n",
                    ..get(None, 304, "", "hit")
                },
                Step {
                    headers: "If-Modified-Since: Mon, 30 Nov 2026 10:00:00 GMT\r\n",
                    ..get(None, 200, "lm", "hit")
                },
            ],
        },
        Row {
            name: "a successful unsafe request invalidates the URL",
            rfc: "9111 §4.4",
            steps: vec![
                get(ok("Cache-Control: max-age=100", "v1"), 200, "v1", "stored"),
                Step {
                    method: "POST",
                    headers: "Content-Length: 0\r\n",
                    body: Some("posted"),
                    ..get(ok("", "posted"), 200, "", "")
                },
                get(
                    ok("Cache-Control: max-age=100", "v2"),
                    200,
                    "v2",
                    "fwd=uri-miss",
                ),
            ],
        },
        Row {
            name: "stale-if-error serves the stored response when the origin answers 5xx",
            rfc: "5861 §4",
            steps: vec![
                get(
                    ok(
                        "Cache-Control: max-age=1, stale-if-error=1000\nAge: 5",
                        "kept",
                    ),
                    200,
                    "kept",
                    "stored",
                ),
                get(
                    Some(send("HTTP/1.1 503 Service Unavailable", "down")),
                    200,
                    "kept",
                    "hit; ttl=-",
                ),
            ],
        },
        Row {
            name: "stale-if-error serves the stored response when the origin hangs up",
            rfc: "5861 §4",
            steps: vec![
                // (the origin closes after it, so the hang-up below is on a new connection)
                get(
                    ok(
                        "Cache-Control: max-age=1, stale-if-error=1000\nAge: 5\nConnection: close",
                        "kept",
                    ),
                    200,
                    "kept",
                    "stored",
                ),
                get(Some(Answer::HangUp), 200, "kept", "hit; ttl=-"),
            ],
        },
        Row {
            name: "without stale-if-error the origin's 5xx goes to the client",
            rfc: "5861 §4",
            steps: vec![
                get(
                    ok("Cache-Control: max-age=1\nAge: 5", "kept"),
                    200,
                    "kept",
                    "stored",
                ),
                get(
                    Some(send("HTTP/1.1 503 Service Unavailable", "down")),
                    503,
                    "down",
                    "fwd=stale",
                ),
            ],
        },
        Row {
            name: "a 204 is stored like any cacheable status, and served without a body",
            rfc: "9111 §3, 9110 §15.3.5",
            steps: vec![
                get(
                    Some(send(
                        "HTTP/1.1 204 No Content\nCache-Control: max-age=100",
                        "",
                    )),
                    204,
                    "",
                    "stored",
                ),
                Step {
                    body: Some(""),
                    ..get(None, 204, "", "hit")
                },
            ],
        },
        Row {
            name: "HEAD is answered from the GET entry",
            rfc: "9111 §4",
            steps: vec![
                get(
                    ok("Cache-Control: max-age=100", "abc"),
                    200,
                    "abc",
                    "stored",
                ),
                Step {
                    method: "HEAD",
                    body: Some(""),
                    ..get(None, 200, "", "hit")
                },
            ],
        },
        Row {
            name: "only-if-cached with nothing stored is a 504",
            rfc: "9111 §5.2.1.7",
            steps: vec![Step {
                headers: "Cache-Control: only-if-cached\r\n",
                body: None,
                ..get(None, 504, "", "")
            }],
        },
        Row {
            name: "a body above max_object streams through uncached",
            rfc: "route option",
            steps: vec![
                get(
                    ok(
                        "Cache-Control: max-age=100",
                        &*Box::leak("z".repeat(5000).into_boxed_str()),
                    ),
                    200,
                    "",
                    "detail=too-large",
                ),
                get(
                    ok("Cache-Control: max-age=100", "small now"),
                    200,
                    "small now",
                    "stored",
                ),
            ],
        },
    ]
}

/// A gateway of one shard routing everything to `origin` through the `policy` tables.
fn one_shard(origin: &Script, policy: &str) -> Option<Gateway> {
    Gateway::start(
        "auto",
        "shards = 1",
        &support::route_all_policy(origin.addr, policy),
    )
}

/// Runs every row on a gateway of `shards` shards; `shared`: one copy per gateway.
fn run_rows(driver: &str, shards: usize, shared: bool) {
    let origin = Script::start();
    let policy = format!(
        "[[route.policy]]\nkind = \"cache\"\nsize = \"1MiB\"\nmax_object = \"4KiB\"\nshared = {shared}\n"
    );
    // several shards keep a pool each: no pooling, so no row depends on which shard's pool
    // the origin closed a connection in
    let pooling = if shards > 1 { "keepalive = 0" } else { "" };
    let Some(g) = Gateway::start(
        driver,
        &format!("shards = {shards}"),
        &format!("{}{policy}\n", support::route_all(origin.addr, pooling)),
    ) else {
        return;
    };
    let driver = format!("{driver}, {shards} shards, shared = {shared}");
    for (i, row) in rows().into_iter().enumerate() {
        let path = format!("/r{i}");
        for (n, step) in row.steps.into_iter().enumerate() {
            let at = format!(
                "{driver}: row {i} `{}` ({}), step {}",
                row.name,
                row.rfc,
                n + 1
            );
            let before = origin.seen(&path).len();
            let expect_upstream = step.origin.is_some();
            if let Some(a) = step.origin {
                origin.on(&path, vec![a]);
            }
            let r: Response = request(g.addr, step.method, &path, step.headers, b"");
            let after = origin.seen(&path);
            assert_eq!(
                after.len() - before,
                usize::from(expect_upstream),
                "{at}: upstream requests"
            );
            assert_eq!(r.status, step.status, "{at}: {r:?}");
            if let Some(b) = step.body
                && !(b.is_empty() && step.status == 200 && step.method == "GET")
            {
                assert_eq!(String::from_utf8_lossy(&r.body), b, "{at}");
            }
            if !step.cache_status.is_empty() {
                let cs = r.header("cache-status").unwrap_or_default();
                assert!(cs.contains(step.cache_status), "{at}: Cache-Status {cs:?}");
            }
            if r.header("cache-status")
                .is_some_and(|c| c.contains("; hit"))
            {
                assert!(r.header("age").is_some(), "{at}: a hit carries Age");
            }
            if !step.upstream_has.is_empty() {
                let last = after.last().unwrap();
                assert!(
                    last.contains(step.upstream_has),
                    "{at}: upstream saw {last:?}"
                );
            }
        }
    }
}

#[test]
fn cache_conformance_table() {
    for d in support::DRIVERS {
        run_rows(d, 1, false);
    }
}

/// The same rows with one copy per gateway over two shards: each request lands on either
/// shard (a new connection each), so lookups, stores, revalidations and invalidations go
/// through the key's owner by message, and every row must still hold.
#[test]
fn cache_conformance_table_with_one_copy_over_two_shards() {
    run_rows("auto", 2, true);
}

#[test]
fn age_counts_what_the_origin_said_and_the_time_in_the_cache() {
    let origin = Script::start();
    let Some(g) = one_shard(&origin, "[[route.policy]]\nkind = \"cache\"\n") else {
        return;
    };
    origin.on(
        "/age",
        vec![send(
            "HTTP/1.1 200 OK\nCache-Control: max-age=1000\nAge: 90",
            "x",
        )],
    );
    assert_eq!(request(g.addr, "GET", "/age", "", b"").status, 200);
    let r = request(g.addr, "GET", "/age", "", b"");
    let age: u64 = r.header("age").unwrap().parse().unwrap();
    // RFC 9111 §4.2.3: at least the origin's Age; a resident time of seconds at most
    assert!((90..120).contains(&age), "{age}");
    let cs = r.header("cache-status").unwrap();
    let ttl: i64 = cs.split("ttl=").nth(1).unwrap().parse().unwrap();
    assert_eq!(ttl, 1000 - age as i64, "{cs}");
}

#[test]
fn the_route_ttl_overrides_the_origin_and_the_query_key_options_hold() {
    let origin = Script::start();
    let policy = "[[route.policy]]\nkind = \"cache\"\nttl = \"1h\"\nquery_exclude = [\"utm\"]\nkey_headers = [\"x-tenant\"]\n";
    let Some(g) = one_shard(&origin, policy) else {
        return;
    };
    origin.on(
        "/q?b=2&a=1&utm=x",
        vec![send("HTTP/1.1 200 OK\nCache-Control: max-age=0", "q")],
    );
    assert_eq!(
        request(g.addr, "GET", "/q?b=2&a=1&utm=x", "X-Tenant: t1\r\n", b"").body,
        b"q"
    );
    // sorted, without utm, same tenant: one entry, fresh for the route's hour despite max-age=0
    let r = request(g.addr, "GET", "/q?a=1&b=2", "X-Tenant: t1\r\n", b"");
    assert_eq!((r.status, &r.body[..]), (200, &b"q"[..]));
    assert!(r.header("cache-status").unwrap().contains("hit"));
    // another tenant: another key
    origin.on("/q?a=1&b=2", vec![send("HTTP/1.1 200 OK", "t2")]);
    let r = request(g.addr, "GET", "/q?a=1&b=2", "X-Tenant: t2\r\n", b"");
    assert_eq!(r.body, b"t2");
    assert_eq!(origin.seen("/q?a=1&b=2").len(), 1);
}

#[test]
fn purge_by_key_prefix_and_tag_reaches_every_shard() {
    let origin = Script::start();
    let policy = "[[route.policy]]\nkind = \"cache\"\n";
    let rest = format!(
        "{}\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        support::route_all_policy(origin.addr, policy)
    );
    let Some(g) = Gateway::start("auto", "shards = 2", &rest) else {
        return;
    };
    let a = admin(&g);
    // 32 connections each: both shards miss once (the origin sees 2) and then hold it
    let fill = |p: &str| {
        origin.on(
            p,
            vec![
                send(
                    "HTTP/1.1 200 OK\nCache-Control: max-age=1000\nCache-Tag: blue, green",
                    p
                );
                2
            ],
        );
        for _ in 0..32 {
            assert_eq!(request(g.addr, "GET", p, "", b"").status, 200);
        }
        assert_eq!(origin.seen(p).len(), 2, "{p}: one miss per shard");
    };
    for p in ["/p/one", "/p/two", "/other/tagged", "/keep"] {
        fill(p);
    }
    // the stage's figures, summed over shards: 4 paths × 32 requests, 2 misses each
    let metrics = String::from_utf8(request(a, "GET", "/metrics", "", b"").body).unwrap();
    let sum = |name: &str| support::stage_figure(&metrics, "cache", name);
    assert_eq!(
        (sum("hits"), sum("misses"), sum("stored")),
        (120, 8, 8),
        "{metrics}"
    );
    assert_eq!(sum("entries"), 8);
    assert_eq!(sum("bytes_served"), 30 * (6 + 6 + 13 + 5));
    assert!(sum("bytes_stored") > 8 * 10);
    let purge = |q: &str| {
        let r = request(
            a,
            "POST",
            &format!("/cache/purge?{q}"),
            "Content-Length: 0\r\n",
            b"",
        );
        assert_eq!(r.status, 200, "{q}");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["shards"], 2, "{q}");
        v["purged"].as_u64().unwrap()
    };
    assert_eq!(
        purge("key=test.local/p/one"),
        2,
        "one object on each of 2 shards"
    );
    assert_eq!(purge("key=/p/one"), 0, "already gone");
    assert_eq!(purge("prefix=/p/"), 2, "/p/two on both shards");
    assert_eq!(
        purge("tag=blue"),
        4,
        "/other/tagged and /keep on both shards"
    );
    assert_eq!(purge("tag=blue"), 0);
    origin.on(
        "/keep",
        vec![send(
            "HTTP/1.1 200 OK\nCache-Control: max-age=1000",
            "again",
        )],
    );
    let r = request(g.addr, "GET", "/keep", "", b"");
    assert_eq!(r.body, b"again");
    assert!(r.header("cache-status").unwrap().contains("fwd=uri-miss"));
}

#[test]
fn a_hundred_concurrent_misses_cost_the_origin_one_request() {
    let origin = Script::start();
    let policy = "[[route.policy]]\nkind = \"cache\"\n";
    let Some(g) = one_shard(&origin, policy) else {
        return;
    };
    // the origin takes its time, so the misses overlap (without coalescing each would reach it)
    origin.on(
        "/co",
        vec![send_after(
            300,
            "HTTP/1.1 200 OK\nCache-Control: max-age=100",
            "shared",
        )],
    );
    let addr = g.addr;
    let clients: Vec<_> = (0..100)
        .map(|_| std::thread::spawn(move || request(addr, "GET", "/co", "", b"")))
        .collect();
    for c in clients {
        let r = c.join().unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"shared"[..]), "{r:?}");
    }
    assert_eq!(origin.seen("/co").len(), 1);
    // with coalescing off, the same burst reaches the origin more than once
    let off = "[[route.policy]]\nkind = \"cache\"\ncoalesce = false\n";
    let Some(g2) = one_shard(&origin, off) else {
        return;
    };
    origin.on(
        "/co2",
        vec![send_after(1000, "HTTP/1.1 200 OK\nCache-Control: max-age=100", "x"); 100],
    );
    let addr = g2.addr;
    let clients: Vec<_> = (0..20)
        .map(|_| std::thread::spawn(move || request(addr, "GET", "/co2", "", b"").status))
        .collect();
    assert!(clients.into_iter().all(|c| c.join().unwrap() == 200));
    assert!(
        origin.seen("/co2").len() > 1,
        "{}",
        origin.seen("/co2").len()
    );
}

#[test]
fn stale_while_revalidate_serves_stale_once_and_refreshes_in_the_background() {
    let origin = Script::start();
    let Some(g) = one_shard(&origin, "[[route.policy]]\nkind = \"cache\"\n") else {
        return;
    };
    let swr = "HTTP/1.1 200 OK\nCache-Control: max-age=1, stale-while-revalidate=1000\nAge: 5\nETag: \"w1\"";
    origin.on("/swr", vec![send(swr, "old")]);
    assert_eq!(request(g.addr, "GET", "/swr", "", b"").body, b"old");
    // RFC 5861 §3: stale within the window is served at once, and refreshed behind it
    origin.on(
        "/swr",
        vec![send(
            "HTTP/1.1 200 OK\nCache-Control: max-age=100\nETag: \"w2\"",
            "new",
        )],
    );
    let r = request(g.addr, "GET", "/swr", "", b"");
    assert_eq!(r.body, b"old");
    assert!(
        r.header("cache-status").unwrap().contains("hit; ttl=-"),
        "{r:?}"
    );
    assert!(
        support::eventually(|| origin.seen("/swr").len() == 2),
        "the refresh went out"
    );
    assert!(
        origin.seen("/swr")[1].contains("If-None-Match: \"w1\""),
        "{:?}",
        origin.seen("/swr")
    );
    assert!(support::eventually(|| request(
        g.addr, "GET", "/swr", "", b""
    )
    .body
        == b"new"));
    let r = request(g.addr, "GET", "/swr", "", b"");
    let cs = r.header("cache-status").unwrap();
    let ttl: i64 = cs.split("hit; ttl=").nth(1).unwrap().parse().unwrap();
    assert!((90..=100).contains(&ttl), "fresh from the refresh: {cs}");
    assert_eq!(origin.seen("/swr").len(), 2, "one refresh, then fresh hits");
}

#[test]
fn the_byte_budget_holds_through_ten_times_its_size() {
    let origin = Script::start();
    let policy = "[[route.policy]]\nkind = \"cache\"\nsize = \"64KiB\"\nmax_object = \"16KiB\"\n";
    let rest = format!(
        "{}\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        support::route_all_policy(origin.addr, policy)
    );
    let Some(g) = Gateway::start("auto", "shards = 1", &rest) else {
        return;
    };
    let body = "b".repeat(16_000);
    for i in 0..40 {
        let path = format!("/big/{i}");
        origin.on(
            &path,
            vec![send("HTTP/1.1 200 OK\nCache-Control: max-age=1000", &body)],
        );
        let r = request(g.addr, "GET", &path, "", b"");
        assert_eq!((r.status, r.body.len()), (200, 16_000));
        assert!(r.header("cache-status").unwrap().contains("stored"));
    }
    let metrics = String::from_utf8(request(admin(&g), "GET", "/metrics", "", b"").body).unwrap();
    let level = |name: &str| -> u64 {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("shardgate_stage_level") && l.contains(&format!("name=\"{name}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .unwrap()
    };
    let (bytes, entries) = (level("bytes_stored"), level("entries"));
    assert!(bytes <= 64 * 1024 && bytes > 32 * 1024, "{bytes}");
    assert!((2..=4).contains(&entries), "{entries}");
    // the newest is still there, the oldest made room
    assert!(
        request(g.addr, "GET", "/big/39", "", b"")
            .header("cache-status")
            .unwrap()
            .contains("hit")
    );
    origin.on("/big/0", vec![send("HTTP/1.1 200 OK", "again")]);
    assert_eq!(request(g.addr, "GET", "/big/0", "", b"").body, b"again");
}

#[test]
fn concurrent_requests_for_a_stale_entry_revalidate_it_once() {
    let origin = Script::start();
    let Some(g) = one_shard(&origin, "[[route.policy]]\nkind = \"cache\"\n") else {
        return;
    };
    let seen = support::script::stale_burst(&origin, g.addr, "/reval", 1);
    assert_eq!(seen.len(), 2, "the fill and one revalidation");
    assert!(seen[1].contains("If-None-Match: \"r1\""), "{seen:?}");
}

#[test]
fn a_global_cache_stage_serves_every_route_and_reports_its_figures() {
    let origin = Script::start();
    let rest = format!(
        "[[policy]]\nkind = \"cache\"\n\n{}\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        support::route_all(origin.addr, "")
    );
    let Some(g) = Gateway::start("auto", "shards = 1", &rest) else {
        return;
    };
    origin.on(
        "/g",
        vec![send(
            "HTTP/1.1 200 OK\nCache-Control: max-age=100",
            "global",
        )],
    );
    for _ in 0..3 {
        assert_eq!(request(g.addr, "GET", "/g", "", b"").body, b"global");
    }
    assert_eq!(origin.seen("/g").len(), 1);
    let metrics = String::from_utf8(request(admin(&g), "GET", "/metrics", "", b"").body).unwrap();
    let hits = metrics
        .lines()
        .find(|l| {
            l.starts_with("shardgate_stage_total{")
                && l.contains("route=\"\"")
                && l.contains("name=\"hits\"")
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(hits.ends_with(" 2"), "{hits}");
}
