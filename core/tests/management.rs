//! API management against a real gateway and its real SQLite store: a consumer's calls are
//! refused until its subscription is approved through the admin API, then admitted on every
//! shard as soon as the approval is answered, and refused again the moment it is revoked;
//! tenants' administrators reach their own tenant only; every change is in the audit trail
//! and the catalogue outlives a restart. Each test runs on SQLite, then on PostgreSQL.
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
use support::origin::Origin;
use support::pg::PgDb;
use support::{Gateway, TempDir, admin, request};

const ROOT: &str = "Authorization: Bearer r00t-admin-token\r\n";
const ACME: &str = "acme-admin-token-0001";
const GLOBEX: &str = "globex-admin-token-01";
const SHOP_KEY: &str = "shop-key-0123456789";

/// Where a test's catalogue lives: a SQLite file, or a PostgreSQL database of its own.
enum Backend {
    Sqlite(TempDir),
    Postgres(PgDb),
}

impl Backend {
    /// Its `[management]` lines.
    fn management(&self) -> String {
        match self {
            Backend::Sqlite(d) => format!("path = \"{}\"\n", d.0.join("c.db").display()),
            Backend::Postgres(p) => p.management(),
        }
    }
}

/// The stores each test runs on: SQLite, and PostgreSQL when there is a server (else the
/// run says it skipped).
fn backends(tag: &str) -> Vec<Backend> {
    let mut all = vec![Backend::Sqlite(TempDir::new())];
    all.extend(PgDb::create(tag).map(Backend::Postgres));
    all
}

fn config(origin: SocketAddr, store: &Backend) -> String {
    format!(
        "[[upstream]]\nname = \"origin\"\ntargets = [\"{origin}\"]\n\n\
         [[route]]\nname = \"orders\"\npath = \"/orders/{{*rest}}\"\nupstream = \"origin\"\n\
         [[route.policy]]\nkind = \"api_key\"\ncatalogue = true\n\
         [[route.policy]]\nkind = \"subscription\"\n\n\
         [[route]]\nname = \"stock\"\npath = \"/stock\"\nupstream = \"origin\"\n\
         [[route.policy]]\nkind = \"api_key\"\ncatalogue = true\n\
         [[route.policy]]\nkind = \"subscription\"\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"r00t-admin-token\"\n\n\
         [management]\n{}",
        store.management()
    )
}

/// A management request with `auth` (whole header lines) and a JSON body; status and JSON.
fn call(a: SocketAddr, method: &str, path: &str, auth: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let headers = format!(
        "{auth}Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    let r = request(a, method, path, &headers, body.as_bytes());
    let ct = r.header("content-type").unwrap_or_default().to_string();
    if r.status >= 400 {
        assert_eq!(ct, "application/problem+json", "{method} {path}");
    }
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}

/// Statuses (and problem details) of `n` requests for `path` with the shop's key, each on a
/// new connection (so both shards take some).
fn calls(g: &Gateway, path: &str, n: usize) -> Vec<(u16, String)> {
    (0..n)
        .map(|_| {
            let r = request(
                g.addr,
                "GET",
                path,
                &format!("X-Api-Key: {SHOP_KEY}\r\n"),
                b"",
            );
            let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            (
                r.status,
                v["detail"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Requests each shard has begun, from `/stats`.
fn per_shard(a: SocketAddr) -> Vec<u64> {
    let r = request(a, "GET", "/stats", ROOT, b"");
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    v["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["requests"].as_u64().unwrap())
        .collect()
}

/// Makes tenant acme (route orders is its) with API `orders`, consumer shop with its key.
fn catalogue(a: SocketAddr) {
    let (st, v) = call(
        a,
        "POST",
        "/tenants",
        ROOT,
        Some(json!({"name": "acme", "admin_token": ACME, "routes": ["orders"]})),
    );
    assert_eq!(st, 201, "{v}");
    let acme = bearer(ACME);
    let (st, v) = call(
        a,
        "POST",
        "/tenants/acme/apis",
        &acme,
        Some(json!({"name": "orders", "routes": ["orders"]})),
    );
    assert_eq!((st, v["shards"].as_u64()), (201, Some(2)), "{v}");
    let (st, v) = call(
        a,
        "POST",
        "/tenants/acme/consumers",
        &acme,
        Some(json!({"name": "shop", "keys": [SHOP_KEY]})),
    );
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        v["consumer"]["keys_sha256"].as_array().map(Vec::len),
        Some(1)
    );
    assert!(
        !v.to_string().contains(SHOP_KEY),
        "the key itself is never kept: {v}"
    );
}

/// A gateway of 2 shards with its store and acme's catalogue (`catalogue`); the origin and
/// the store's directory live as long as it.
fn started(store: &Backend) -> (Origin, Gateway, SocketAddr) {
    let origin = Origin::start();
    let config = config(origin.addr, store);
    let g = Gateway::start("auto", "shards = 2", &config).unwrap();
    let a = admin(&g);
    catalogue(a);
    (origin, g, a)
}

#[test]
fn calls_wait_for_approval_and_stop_at_revocation_on_every_shard() {
    for store in backends("approval") {
        approval(&store);
    }
}

fn approval(store: &Backend) {
    let (origin, g, a) = started(store);
    // no subscription yet; a wrong key is not a consumer at all
    let before = calls(&g, "/orders/1", 4);
    assert!(
        before
            .iter()
            .all(|(s, d)| *s == 403 && d.contains("no subscription to API `acme/orders`")),
        "{before:?}"
    );
    let r = request(
        g.addr,
        "GET",
        "/orders/1",
        "X-Api-Key: not-a-key-at-all\r\n",
        b"",
    );
    assert_eq!(r.status, 401);
    // the consumer asks with its own key: pending, and its calls say so
    let me = format!("X-Api-Key: {SHOP_KEY}\r\n");
    let (st, v) = call(
        a,
        "POST",
        "/tenants/acme/subscriptions",
        &me,
        Some(json!({"api": "orders"})),
    );
    assert_eq!(st, 201, "{v}");
    let id = v["subscription"]["id"].as_u64().unwrap();
    assert_eq!(v["subscription"]["state"], "pending");
    assert_eq!(v["subscription"]["requested_by"], "consumer:acme/shop");
    let pending = calls(&g, "/orders/1", 4);
    let named =
        format!("subscription {id} of `acme/shop` to API `acme/orders` is pending approval");
    assert!(
        pending.iter().all(|(s, d)| *s == 403 && *d == named),
        "{pending:?}"
    );
    // a consumer cannot approve itself, asking twice is a conflict
    let approve = format!("/tenants/acme/subscriptions/{id}/approve");
    assert_eq!(call(a, "POST", &approve, &me, None).0, 403);
    assert_eq!(
        call(
            a,
            "POST",
            "/tenants/acme/subscriptions",
            &me,
            Some(json!({"api": "orders"}))
        )
        .0,
        409
    );
    // the tenant's administrator approves: every shard admits at once
    let (st, v) = call(a, "POST", &approve, &bearer(ACME), None);
    assert_eq!((st, v["shards"].as_u64()), (200, Some(2)), "{v}");

    let seen = per_shard(a);
    let after = calls(&g, "/orders/1", 16);
    assert!(after.iter().all(|(s, _)| *s == 200), "{after:?}");
    let now = per_shard(a);
    assert!(
        now.iter().zip(&seen).all(|(n, s)| n > s),
        "both shards served: {seen:?} → {now:?}"
    );
    assert_eq!(
        origin
            .records()
            .last()
            .unwrap()
            .header("x-consumer-id")
            .as_deref(),
        Some("acme/shop")
    );
    // a route of no API is refused even with an approved key
    let stock = calls(&g, "/stock", 1);
    assert_eq!(
        stock[0],
        (403, "this route is not part of a published API".to_string())
    );
    // revoked: refused on every shard the moment the answer came
    let revoke = format!("/tenants/acme/subscriptions/{id}/revoke");
    assert_eq!(call(a, "POST", &revoke, &bearer(ACME), None).0, 200);
    let revoked = calls(&g, "/orders/1", 16);
    assert!(
        revoked
            .iter()
            .all(|(s, d)| *s == 403 && d.contains("was revoked")),
        "{revoked:?}"
    );
    assert_eq!(
        call(a, "POST", &revoke, &bearer(ACME), None).0,
        409,
        "revoked already"
    );
    // the audit trail has each change: who, what, before and after
    let (st, v) = call(a, "GET", "/tenants/acme/audit", &bearer(ACME), None);
    assert_eq!(st, 200, "{v}");
    let actions: Vec<(&str, &str)> = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("subscription.revoke", "tenant:acme"),
            ("subscription.approve", "tenant:acme"),
            ("subscription.request", "consumer:acme/shop"),
            ("consumer.create", "tenant:acme"),
            ("api.create", "tenant:acme"),
            ("tenant.create", "admin"),
        ]
    );
    let approval = &v["audit"][1];
    let (was, is): (Value, Value) = (
        serde_json::from_str(approval["before"].as_str().unwrap()).unwrap(),
        serde_json::from_str(approval["after"].as_str().unwrap()).unwrap(),
    );
    assert_eq!(
        (was["state"].as_str(), is["state"].as_str()),
        (Some("pending"), Some("approved"))
    );
    drop(g);
    // the catalogue outlives the gateway: a new one starts with it, and approving again works
    let g = Gateway::start("auto", "shards = 2", &config(origin.addr, store)).unwrap();
    let a = admin(&g);
    assert!(
        calls(&g, "/orders/1", 4)
            .iter()
            .all(|(s, d)| *s == 403 && d.contains("was revoked"))
    );
    assert_eq!(call(a, "POST", &approve, &bearer(ACME), None).0, 200);
    assert!(calls(&g, "/orders/1", 4).iter().all(|(s, _)| *s == 200));
    let (_, v) = call(a, "GET", "/audit?limit=2", ROOT, None);
    assert_eq!(v["audit"][0]["action"], "subscription.approve");
    assert_eq!(v["audit"][0]["id"], 7);
    // on PostgreSQL, the rows are in the server's own tables
    if let Backend::Postgres(p) = store {
        let mut c = p.client();
        let n: i64 = c
            .query_one("SELECT COUNT(*) FROM audit", &[])
            .unwrap()
            .get(0);
        let state: String = c
            .query_one(
                "SELECT state FROM subscriptions WHERE consumer = 'shop'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!((n, state.as_str()), (7, "approved"));
    }
}

#[test]
fn a_tenants_administrator_reaches_that_tenant_only() {
    for store in backends("tenants") {
        isolation(&store);
    }
}

fn isolation(store: &Backend) {
    let (_origin, g, a) = started(store);
    // the admin assigns routes: one tenant's each, and an admin token is one tenant's
    let taken = json!({"name": "globex", "admin_token": GLOBEX, "routes": ["orders"]});
    assert_eq!(call(a, "POST", "/tenants", ROOT, Some(taken)).0, 409);
    let same = json!({"name": "globex", "admin_token": ACME, "routes": ["stock"]});
    assert_eq!(call(a, "POST", "/tenants", ROOT, Some(same)).0, 409);
    let body = json!({"name": "globex", "admin_token": GLOBEX, "routes": ["stock"]});
    assert_eq!(call(a, "POST", "/tenants", ROOT, Some(body)).0, 201);
    let globex = bearer(GLOBEX);
    // its own tenant only: listing, reading, changing and deciding in acme are refused
    let (_, v) = call(a, "GET", "/tenants", &globex, None);
    assert_eq!(v["tenants"], json!(["globex"]));
    for (method, path) in [
        ("GET", "/tenants/acme"),
        ("GET", "/tenants/acme/consumers"),
        ("GET", "/tenants/acme/consumers/shop"),
        ("DELETE", "/tenants/acme/consumers/shop"),
        ("GET", "/tenants/acme/audit"),
        ("GET", "/tenants/acme/subscriptions"),
        ("GET", "/tenants/acme/subscriptions/1"),
        ("POST", "/tenants/acme/subscriptions/1/approve"),
        ("PUT", "/tenants/acme/consumers/shop"),
        ("PUT", "/tenants/acme"),
        ("GET", "/tenants/acme/analytics"),
        ("GET", "/tenants/acme/trends"),
        ("GET", "/analytics"),
        ("GET", "/trends"),
        ("GET", "/audit"),
        ("POST", "/tenants"),
        ("DELETE", "/tenants/globex"),
    ] {
        let (st, v) = call(
            a,
            method,
            path,
            &globex,
            Some(json!({"name": "x", "routes": ["y"]})),
        );
        assert_eq!(st, 403, "{method} {path}: {v}");
    }
    let (st, _) = call(
        a,
        "POST",
        "/tenants/acme/apis",
        &globex,
        Some(json!({"name": "x", "routes": ["stock"]})),
    );
    assert_eq!(st, 403);
    // acme's consumer is untouched, and a tenant publishes its own routes only
    let (st, v) = call(
        a,
        "GET",
        "/tenants/acme/consumers/shop",
        &bearer(ACME),
        None,
    );
    assert_eq!((st, v["name"].as_str()), (200, Some("shop")));
    let (st, v) = call(
        a,
        "POST",
        "/tenants/globex/apis",
        &globex,
        Some(json!({"name": "o", "routes": ["orders"]})),
    );
    assert_eq!(st, 403, "acme's route is not globex's to publish: {v}");
    let (st, v) = call(
        a,
        "POST",
        "/tenants/acme/apis",
        &bearer(ACME),
        Some(json!({"name": "s", "routes": ["stock"]})),
    );
    assert_eq!(st, 403, "{v}");
    let (st, v) = call(
        a,
        "POST",
        "/tenants/acme/apis",
        &bearer(ACME),
        Some(json!({"name": "again", "routes": ["orders"]})),
    );
    assert_eq!(st, 409, "a route is in one API: {v}");
    // no credentials, a wrong token
    assert_eq!(call(a, "GET", "/tenants", "", None).0, 401);
    let r = request(a, "GET", "/tenants", "", b"");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"shardgate management\"")
    );
    assert_eq!(
        call(
            a,
            "GET",
            "/tenants",
            &bearer("wrong-token-wrong-token"),
            None
        )
        .0,
        401
    );
    // globex's consumer, approved for globex's API, is no consumer of acme's
    let g2 = bearer(GLOBEX);
    let key = "globex-key-0123456789";
    assert_eq!(
        call(
            a,
            "POST",
            "/tenants/globex/apis",
            &g2,
            Some(json!({"name": "s", "routes": ["stock"]}))
        )
        .0,
        201
    );
    assert_eq!(
        call(
            a,
            "POST",
            "/tenants/globex/consumers",
            &g2,
            Some(json!({"name": "c", "keys": [key]}))
        )
        .0,
        201
    );
    let (_, v) = call(
        a,
        "POST",
        "/tenants/globex/subscriptions",
        &g2,
        Some(json!({"consumer": "c", "api": "s"})),
    );
    let id = v["subscription"]["id"].as_u64().unwrap();
    assert_eq!(
        call(
            a,
            "POST",
            &format!("/tenants/globex/subscriptions/{id}/approve"),
            &g2,
            None
        )
        .0,
        200
    );
    let hdr = format!("X-Api-Key: {key}\r\n");
    assert_eq!(request(g.addr, "GET", "/stock", &hdr, b"").status, 200);
    let r = request(g.addr, "GET", "/orders/1", &hdr, b"");
    assert_eq!(r.status, 403);
    assert!(
        String::from_utf8_lossy(&r.body)
            .contains("`globex/c` is not a consumer of API `acme/orders`")
    );
    // and globex's key cannot subscribe in acme
    let (st, _) = call(
        a,
        "POST",
        "/tenants/acme/subscriptions",
        &hdr,
        Some(json!({"api": "orders"})),
    );
    assert_eq!(st, 403);
    // a tenant removed and made again under its name inherits none of its history
    let (_, v) = call(a, "GET", "/tenants/globex/analytics?by=consumer", &g2, None);
    assert_eq!(v["rows"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(call(a, "DELETE", "/tenants/globex", ROOT, None).0, 200);
    let again =
        json!({"name": "globex", "admin_token": "globex-admin-token-02", "routes": ["stock"]});
    assert_eq!(call(a, "POST", "/tenants", ROOT, Some(again)).0, 201);
    let g3 = bearer("globex-admin-token-02");
    let (_, v) = call(a, "GET", "/tenants/globex/audit", &g3, None);
    let actions: Vec<&str> = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["tenant.create"], "{v}");
    let (_, v) = call(a, "GET", "/tenants/globex/analytics?by=consumer", &g3, None);
    assert_eq!(v["rows"], json!([]), "{v}");
    assert_eq!(
        call(a, "GET", "/tenants", &g2, None).0,
        401,
        "the old token is gone"
    );
    // the admin's trail keeps the removal
    let (_, v) = call(a, "GET", "/audit?limit=3", ROOT, None);
    assert_eq!(v["audit"][1]["action"], "tenant.delete");
}

#[test]
fn bad_management_requests_get_precise_problems() {
    for store in backends("problems") {
        problems(&store);
    }
}

fn problems(store: &Backend) {
    let (_origin, g, a) = started(store);
    let acme = bearer(ACME);
    let raw = |body: &str| {
        let h = format!("{ROOT}Content-Length: {}\r\n", body.len());
        request(a, "POST", "/tenants", &h, body.as_bytes()).status
    };
    assert_eq!(raw("{not json"), 400);
    assert_eq!(
        raw(r#"{"name": "t", "admin_token": "0123456789abcdef", "colour": 1}"#),
        422
    );
    assert_eq!(
        raw(r#"{"name": "bad/name", "admin_token": "0123456789abcdef"}"#),
        422
    );
    assert_eq!(raw(r#"{"name": "t", "admin_token": "short"}"#), 422);
    assert_eq!(
        raw(r#"{"name": "acme", "admin_token": "0123456789abcdef"}"#),
        409
    );
    let big = format!("{ROOT}Content-Length: 70000\r\n");
    assert_eq!(request(a, "POST", "/tenants", &big, b"").status, 413);
    let chunked = format!("{ROOT}Transfer-Encoding: chunked\r\n");
    assert_eq!(
        request(a, "POST", "/tenants", &chunked, b"0\r\n\r\n").status,
        411
    );
    let cases = [
        (
            "POST",
            "/tenants/acme/consumers",
            json!({"name": "x", "plan": "none"}),
            422,
        ),
        (
            "POST",
            "/tenants/acme/consumers",
            json!({"name": "x", "keys_sha256": ["12"]}),
            422,
        ),
        (
            "POST",
            "/tenants/acme/consumers",
            json!({"name": "x", "keys": [SHOP_KEY]}),
            409,
        ),
        (
            "POST",
            "/tenants/acme/consumers",
            json!({"name": "shop"}),
            409,
        ),
        (
            "PUT",
            "/tenants/acme/consumers/y",
            json!({"name": "z"}),
            422,
        ),
        (
            "POST",
            "/tenants/acme/apis",
            json!({"name": "empty", "routes": []}),
            422,
        ),
        (
            "POST",
            "/tenants/acme/subscriptions",
            json!({"consumer": "nobody", "api": "orders"}),
            422,
        ),
        (
            "POST",
            "/tenants/acme/subscriptions",
            json!({"consumer": "shop", "api": "nothing"}),
            422,
        ),
        (
            "POST",
            "/tenants/acme/subscriptions/99/approve",
            Value::Null,
            404,
        ),
        (
            "POST",
            "/tenants/acme/subscriptions/1/approve",
            Value::Null,
            404,
        ),
        ("GET", "/tenants/nowhere", Value::Null, 403),
        ("GET", "/tenants/acme/widgets", Value::Null, 404),
        ("PATCH", "/tenants/acme/apis", Value::Null, 405),
    ];
    for (method, path, body, want) in cases {
        let (st, v) = call(a, method, path, &acme, Some(body));
        assert_eq!(st, want, "{method} {path}: {v}");
    }
    assert_eq!(call(a, "GET", "/tenants/nowhere", ROOT, None).0, 404);
    // a plan in use stays; with no consumer on it, it goes
    let plan = json!({"name": "gold", "rate_per_minute": 100});
    assert_eq!(
        call(a, "POST", "/tenants/acme/plans", &acme, Some(plan)).0,
        201
    );
    let shop = json!({"keys": [SHOP_KEY], "plan": "gold"});
    assert_eq!(
        call(a, "PUT", "/tenants/acme/consumers/shop", &acme, Some(shop)).0,
        200
    );
    assert_eq!(
        call(a, "DELETE", "/tenants/acme/plans/gold", &acme, None).0,
        409
    );
    assert_eq!(
        call(a, "DELETE", "/tenants/acme/consumers/shop", &acme, None).0,
        200
    );
    assert_eq!(
        call(a, "DELETE", "/tenants/acme/plans/gold", &acme, None).0,
        200
    );
    // the data path is unaffected by all of it
    assert_eq!(
        calls(&g, "/orders/1", 1)[0].0,
        401,
        "the deleted consumer's key is gone"
    );
}

#[test]
fn two_nodes_on_one_postgres_share_the_catalogue_and_add_up_their_figures() {
    let Some(pg) = PgDb::create("fleet") else {
        return;
    };
    let store = Backend::Postgres(pg);
    let origin = Origin::start();
    let text = config(origin.addr, &store) + "flush = \"200ms\"\n";
    let one = Gateway::start("auto", "shards = 2", &text).unwrap();
    let two = Gateway::start("auto", "shards = 2", &text).unwrap();
    let (a1, a2) = (admin(&one), admin(&two));
    // the catalogue is made and the subscription approved through node one only
    catalogue(a1);
    let me = format!("X-Api-Key: {SHOP_KEY}\r\n");
    let (_, v) = call(
        a1,
        "POST",
        "/tenants/acme/subscriptions",
        &me,
        Some(json!({"api": "orders"})),
    );
    let id = v["subscription"]["id"].as_u64().unwrap();
    let approve = format!("/tenants/acme/subscriptions/{id}/approve");
    assert_eq!(call(a1, "POST", &approve, &bearer(ACME), None).0, 200);
    // node two takes it from the store at its next flush (each 200 the test saw is counted)
    let seen = std::cell::Cell::new(0u64);
    let get = |g: &Gateway| {
        let st = calls(g, "/orders/1", 1)[0].0;
        seen.set(seen.get() + u64::from(st == 200));
        st
    };
    assert!(support::eventually(|| get(&two) == 200));
    for g in [&one, &two, &one, &two] {
        assert_eq!(get(g), 200);
    }
    // a change made on node two reaches node one the same way
    let revoke = format!("/tenants/acme/subscriptions/{id}/revoke");
    assert_eq!(call(a2, "POST", &revoke, &bearer(ACME), None).0, 200);
    assert!(support::eventually(|| get(&one) == 403));
    // each node adds its own figures to the shared table (node two's query writes its
    // own first): node one's query sees both
    let q = "/tenants/acme/analytics?last=1h&by=class";
    let _ = call(a2, "GET", q, &bearer(ACME), None);
    let (_, v) = call(a1, "GET", q, &bearer(ACME), None);
    let ok: u64 = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["class"] == 2)
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    assert_eq!(ok, seen.get(), "{v}");
}
