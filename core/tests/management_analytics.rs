//! Call analytics against a real gateway and its real SQLite store: after a scripted load of
//! known counts per consumer and status, the time-range query returns exactly those counts;
//! a store another process has locked stalls no shard and loses no figure (they wait and are
//! written later); the trend page renders those numbers in headless Chromium.
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

use serde_json::{Value, json};
use support::browser::{chromium, headless, screenshot};
use support::origin::{Origin, closed_port};
use support::{Gateway, TempDir, admin, eventually, request};

const SHOP: &str = "shop-key-0123456789";
const KIOSK: &str = "kiosk-key-0123456789";

fn config(origin: SocketAddr, db: &std::path::Path, token: &str) -> String {
    let dead = closed_port();
    let guarded = "[[route.policy]]\nkind = \"api_key\"\ncatalogue = true\n\
                   [[route.policy]]\nkind = \"subscription\"\n\n";
    format!(
        "[[upstream]]\nname = \"origin\"\ntargets = [\"{origin}\"]\n\n\
         [[upstream]]\nname = \"dead\"\ntargets = [\"{dead}\"]\n\n\
         [[route]]\nname = \"orders\"\npath = \"/orders/{{*rest}}\"\nupstream = \"origin\"\n{guarded}\
         [[route]]\nname = \"broken\"\npath = \"/broken\"\nupstream = \"dead\"\n{guarded}\
         [[route]]\nname = \"open\"\npath = \"/open\"\nupstream = \"origin\"\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{token}\"\n\n\
         [management]\npath = \"{}\"\nflush = \"1h\"\n",
        db.display()
    )
}

fn call(a: SocketAddr, auth: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let h = format!("{auth}Content-Length: {}\r\n", body.len());
    let r = request(a, method, path, &h, body.as_bytes());
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

/// Tenant acme: APIs orders and broken, consumers shop (approved for both) and kiosk (asked
/// for orders, pending).
fn seed(a: SocketAddr, auth: &str) {
    let steps = [
        (
            "/tenants",
            json!({"name": "acme", "admin_token": "acme-admin-token-0001", "routes": ["orders", "broken"]}),
        ),
        (
            "/tenants/acme/apis",
            json!({"name": "orders", "routes": ["orders"]}),
        ),
        (
            "/tenants/acme/apis",
            json!({"name": "broken", "routes": ["broken"]}),
        ),
        (
            "/tenants/acme/consumers",
            json!({"name": "shop", "keys": [SHOP]}),
        ),
        (
            "/tenants/acme/consumers",
            json!({"name": "kiosk", "keys": [KIOSK]}),
        ),
        (
            "/tenants/acme/subscriptions",
            json!({"consumer": "shop", "api": "orders"}),
        ),
        (
            "/tenants/acme/subscriptions",
            json!({"consumer": "shop", "api": "broken"}),
        ),
        (
            "/tenants/acme/subscriptions",
            json!({"consumer": "kiosk", "api": "orders"}),
        ),
    ];
    let mut ids = Vec::new();
    for (path, body) in steps {
        let (st, v) = call(a, auth, "POST", path, Some(body));
        assert_eq!(st, 201, "{path}: {v}");
        ids.extend(v["subscription"]["id"].as_u64());
    }
    // shop's two are approved, kiosk's stays pending
    for id in &ids[..2] {
        let path = format!("/tenants/acme/subscriptions/{id}/approve");
        assert_eq!(call(a, auth, "POST", &path, None).0, 200);
    }
}

/// The scripted load: shop 7 × 200 and 2 × 502, kiosk 3 × 403 (pending), anonymous 4 × 200
/// on a route of no API; each on a new connection, so both shards count.
fn load(g: &Gateway) {
    let key = |k: &str| format!("X-Api-Key: {k}\r\n");
    for (path, who, n, want) in [
        ("/orders/1", key(SHOP), 7, 200),
        ("/broken", key(SHOP), 2, 502),
        ("/orders/2", key(KIOSK), 3, 403),
        ("/open", String::new(), 4, 200),
    ] {
        for _ in 0..n {
            assert_eq!(
                request(g.addr, "GET", path, &who, b"").status,
                want,
                "{path}"
            );
        }
    }
}

/// acme's last hour by consumer and status class, as acme's administrator asks.
fn by_consumer(a: SocketAddr) -> (u16, Value) {
    let acme = "Authorization: Bearer acme-admin-token-0001\r\n";
    let path = "/tenants/acme/analytics?last=1h&by=consumer,class";
    call(a, acme, "GET", path, None)
}

/// `(consumer, class, count, errors)` of an analytics answer by consumer and class.
fn counts(v: &Value) -> Vec<(String, u64, u64, u64)> {
    v["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap();
            (
                r["consumer"].as_str().unwrap().to_string(),
                n("class"),
                n("count"),
                n("errors"),
            )
        })
        .collect()
}

fn want() -> Vec<(String, u64, u64, u64)> {
    [
        ("acme/kiosk", 4, 3, 0),
        ("acme/shop", 2, 7, 0),
        ("acme/shop", 5, 2, 2),
    ]
    .map(|(c, k, n, e)| (c.to_string(), k, n, e))
    .to_vec()
}

#[test]
fn a_time_range_query_returns_exactly_the_calls_made_even_past_a_locked_store() {
    let origin = Origin::start();
    let db = TempDir::new();
    let path = db.0.join("c.db");
    let g = Gateway::start(
        "auto",
        "shards = 2",
        &config(origin.addr, &path, "r00t-admin-token"),
    )
    .unwrap();
    let a = admin(&g);
    let root = "Authorization: Bearer r00t-admin-token\r\n";
    seed(a, root);
    load(&g);
    let acme = "Authorization: Bearer acme-admin-token-0001\r\n";
    let (st, v) = by_consumer(a);
    assert_eq!(st, 200, "{v}");
    assert_eq!(counts(&v), want());
    assert_eq!(
        v["dropped"],
        Value::Null,
        "a gateway-wide figure, not the tenant's"
    );
    // by API, and the whole gateway for the admin (the route of no API has tenant "")
    let (_, v) = call(
        a,
        acme,
        "GET",
        "/tenants/acme/analytics?last=1h&by=api",
        None,
    );
    let apis: Vec<(&str, u64)> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["api"].as_str().unwrap(), r["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(apis, [("broken", 2), ("orders", 10)]);
    let (_, v) = call(a, root, "GET", "/analytics?last=1h&by=tenant", None);
    assert_eq!(v["dropped"], 0);
    let tenants: Vec<(&str, u64)> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["tenant"].as_str().unwrap(), r["count"].as_u64().unwrap()))
        .collect();
    // the seeding's admin calls never reach the data listener; 16 data requests in all
    assert_eq!(tenants, [("", 4), ("acme", 12)]);
    assert_eq!(
        call(a, acme, "GET", "/analytics", None).0,
        403,
        "a tenant reads its own only"
    );
    assert_eq!(
        call(a, acme, "GET", "/tenants/acme/analytics?last=1x", None).0,
        400
    );
    // another process locks the database: the shards go on serving, the figures wait
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    load(&g);
    let (st, v) = by_consumer(a);
    assert_eq!(st, 200, "{v}");
    let doubled: Vec<_> = want()
        .into_iter()
        .map(|(c, k, n, e)| (c, k, 2 * n, 2 * e))
        .collect();
    assert_eq!(counts(&v), doubled, "the waiting figures count");
    assert!(eventually(|| g
        .log_lines()
        .iter()
        .any(|l| l.contains("cannot write call figures"))));
    other.execute_batch("COMMIT").unwrap();
    drop(other);
    // unlocked: written at the next collection, counted once
    let (_, v) = by_consumer(a);
    assert_eq!(counts(&v), doubled);
    let stored = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = stored
        .query_row(
            "SELECT SUM(count) FROM calls WHERE tenant = 'acme'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 24, "in the store itself");
    assert!(eventually(|| g
        .log_lines()
        .iter()
        .any(|l| l.contains("takes call figures again"))));
}

#[test]
fn the_trend_page_renders_the_counts_in_headless_chromium() {
    let Some(bin) = chromium() else {
        println!("skipped: no chromium (Debian package `chromium`; .ci/run installs it)");
        return;
    };
    let origin = Origin::start();
    let db = TempDir::new();
    let g = Gateway::start(
        "auto",
        "shards = 2",
        &config(origin.addr, &db.0.join("c.db"), "r00t-admin-token"),
    )
    .unwrap();
    let a = admin(&g);
    seed(a, "Authorization: Bearer r00t-admin-token\r\n");
    load(&g);
    let profile = TempDir::new();
    // the browser signs in as a browser does: Basic, the token as password (here in the URL)
    let url =
        format!("http://admin:r00t-admin-token@{a}/tenants/acme/trends?window=hour&by=consumer");
    let dom = headless(bin, &profile.0, &["--dump-dom".into()], &url);
    let cell = |series: &str, col: &str| -> String {
        let row = dom
            .find(&format!("data-series=\"{series}\""))
            .unwrap_or_else(|| panic!("no {series} in:\n{dom}"));
        let key = format!("data-col=\"{col}\">");
        let at = row + dom[row..].find(&key).unwrap();
        dom[at + key.len()..].split('<').next().unwrap().to_string()
    };
    assert_eq!(cell("acme/shop", "requests"), "9");
    assert_eq!(cell("acme/shop", "errors"), "2");
    assert_eq!(cell("acme/kiosk", "requests"), "3");
    assert!(dom.contains("<svg"), "charts drawn");
    let by_api = headless(
        bin,
        &profile.0,
        &["--dump-dom".into()],
        &format!("http://admin:r00t-admin-token@{a}/trends?window=day&by=api"),
    );
    assert!(
        by_api.contains("data-series=\"acme/orders\"")
            && by_api.contains("data-series=\"(no API)\""),
        "{by_api}"
    );
    let shot = screenshot(bin, &profile.0, &url, "trends-page.png", "1280,800");
    println!("trend page screenshot: {}", shot.display());
}
