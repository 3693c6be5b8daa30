//! Authorization rules over API-key groups and JWT scopes, and CORS, through a real shardgate:
//! 401 without identity, 403 with `insufficient_scope`, preflights answered at the gateway,
//! CORS fields on allowed origins' responses; nothing refused reaches the origin.
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

use jsonwebtoken::{EncodingKey, Header, encode};
use support::origin::Origin;
use support::{DRIVERS, Gateway, request, route_all_policy};

fn hs256(scope: &str) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let claims = serde_json::json!({ "sub": "u1", "exp": exp, "scope": scope, "realm_access": { "roles": ["staff"] } });
    encode(&Header::default(), &claims, &EncodingKey::from_secret(b"k")).unwrap()
}

#[test]
fn scopes_and_roles_decide_per_method() {
    let origin = Origin::start();
    let policy = "[[route.policy]]\nkind = \"jwt\"\nalgorithms = [\"HS256\"]\nsecret = \"k\"\nroles_claim = \"realm_access.roles\"\n\
        [[route.policy]]\nkind = \"authorize\"\n\
        [[route.policy.rules]]\nmethods = [\"GET\"]\nany_scope = [\"orders:read\", \"orders:admin\"]\n\
        [[route.policy.rules]]\nmethods = [\"DELETE\"]\nall_scopes = [\"orders:admin\"]\nall_roles = [\"staff\"]\n";
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all_policy(origin.addr, policy))
        else {
            continue;
        };
        origin.reset_counts();
        let auth = |scope: &str| format!("Authorization: Bearer {}\r\n", hs256(scope));
        assert_eq!(
            request(g.addr, "GET", "/o", &auth("orders:read"), b"").status,
            200
        );
        let r = request(g.addr, "GET", "/o", &auth("profile"), b"");
        assert_eq!(r.status, 403);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer error=\"insufficient_scope\", scope=\"orders:read orders:admin\"")
        );
        assert_eq!(
            request(g.addr, "DELETE", "/o", &auth("orders:admin"), b"").status,
            200
        );
        assert_eq!(
            request(g.addr, "DELETE", "/o", &auth("orders:read"), b"").status,
            403
        );
        // no rule for POST: denied by default
        assert_eq!(
            request(g.addr, "POST", "/o", &auth("orders:admin"), b"").status,
            403
        );
        assert_eq!(
            origin.records().len(),
            2,
            "only the two allowed requests got through"
        );
    }
}

#[test]
fn api_key_groups_are_roles_and_no_identity_is_401() {
    let origin = Origin::start();
    let policy = "[[route.policy]]\nkind = \"authorize\"\n[[route.policy.rules]]\nany_role = [\"reports\"]\n";
    // authorize without an authentication stage before it: nobody is ever identified
    let g = Gateway::start(
        "epoll",
        "shards = 1",
        &route_all_policy(origin.addr, policy),
    )
    .unwrap();
    let r = request(g.addr, "GET", "/x", "", b"");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    drop(g);

    let policy = "[[route.policy]]\nkind = \"api_key\"\ninsecure_plaintext = true\nconsumers = [{ name = \"a\", key = \"ka\", groups = [\"reports\"] }, { name = \"b\", key = \"kb\" }]\n\
        [[route.policy]]\nkind = \"authorize\"\n[[route.policy.rules]]\nany_role = [\"reports\"]\n";
    let g = Gateway::start(
        "epoll",
        "shards = 1",
        &route_all_policy(origin.addr, policy),
    )
    .unwrap();
    assert_eq!(
        request(g.addr, "GET", "/x", "X-Api-Key: ka\r\n", b"").status,
        200
    );
    assert_eq!(
        request(g.addr, "GET", "/x", "X-Api-Key: kb\r\n", b"").status,
        403
    );
}

#[test]
fn cors_preflights_are_answered_and_allowed_origins_marked() {
    let origin = Origin::start();
    let policy = "[[route.policy]]\nkind = \"cors\"\nallow_origins = [\"https://app.example.com\"]\nallow_methods = [\"GET\", \"PUT\"]\nallow_headers = [\"Authorization\", \"Content-Type\"]\nexpose_headers = [\"X-Total\"]\nallow_credentials = true\nmax_age = \"1m\"\n";
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all_policy(origin.addr, policy))
        else {
            continue;
        };
        origin.reset_counts();
        let pre = request(
            g.addr,
            "OPTIONS",
            "/items",
            "Origin: https://app.example.com\r\nAccess-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: content-type, authorization\r\n",
            b"",
        );
        assert_eq!(pre.status, 204, "{pre:?}");
        assert_eq!(
            pre.header("access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(pre.header("access-control-allow-methods"), Some("GET, PUT"));
        assert_eq!(
            pre.header("access-control-allow-headers"),
            Some("Authorization, Content-Type")
        );
        assert_eq!(pre.header("access-control-max-age"), Some("60"));
        assert_eq!(pre.header("access-control-allow-credentials"), Some("true"));
        assert_eq!(pre.header("vary"), Some("Origin"));
        assert!(pre.header("content-length").is_none() && pre.body.is_empty());
        // another origin, method or header: refused
        for (o, m, h) in [
            ("https://evil.example.com", "PUT", ""),
            ("https://app.example.com", "DELETE", ""),
            (
                "https://app.example.com",
                "PUT",
                "Access-Control-Request-Headers: x-secret\r\n",
            ),
        ] {
            let r = request(
                g.addr,
                "OPTIONS",
                "/items",
                &format!("Origin: {o}\r\nAccess-Control-Request-Method: {m}\r\n{h}"),
                b"",
            );
            assert_eq!(r.status, 403, "{o} {m} {h}");
        }
        assert!(
            origin.records().is_empty(),
            "preflights never reach the origin"
        );
        let r = request(
            g.addr,
            "GET",
            "/items",
            "Origin: https://app.example.com\r\n",
            b"",
        );
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(r.header("access-control-expose-headers"), Some("X-Total"));
        let r = request(
            g.addr,
            "GET",
            "/items",
            "Origin: https://evil.example.com\r\n",
            b"",
        );
        assert_eq!(r.status, 200);
        assert!(r.header("access-control-allow-origin").is_none());
        // a plain OPTIONS (no preflight) is forwarded
        assert_eq!(request(g.addr, "OPTIONS", "/items", "", b"").status, 200);
    }
}

/// Issue 9: a credential or a singleton field a stage decides on, given twice, is refused
/// with 400 before the upstream sees anything: the API key header twice, the key in the
/// header and the query at once, the query parameter twice; Origin twice on a CORS route;
/// Content-Type twice where content types are checked.
#[test]
fn issue_9_repeated_credentials_and_singleton_fields_are_refused() {
    let origin = Origin::start();
    let policy = "[[route.policy]]\nkind = \"api_key\"\ninsecure_plaintext = true\nquery = \"api_key\"\nconsumers = [{ name = \"a\", key = \"ka\" }]\n\
        [[route.policy]]\nkind = \"cors\"\nallow_origins = [\"https://app.test\"]\n\
        [[route.policy]]\nkind = \"validate\"\ncontent_types = [\"application/json\"]\n";
    for driver in DRIVERS {
        let Some(g) = Gateway::start(driver, "shards = 1", &route_all_policy(origin.addr, policy))
        else {
            continue;
        };
        assert_eq!(
            request(g.addr, "GET", "/x", "X-Api-Key: ka\r\n", b"").status,
            200
        );
        origin.reset_counts();
        let json = "Content-Type: application/json\r\nContent-Length: 2\r\n";
        for (name, path, headers, body) in [
            (
                "key header twice",
                "/x",
                "X-Api-Key: ka\r\nX-Api-Key: kb\r\n".to_string(),
                &b""[..],
            ),
            (
                "key header twice, same",
                "/x",
                "X-Api-Key: ka\r\nX-Api-Key: ka\r\n".to_string(),
                b"",
            ),
            (
                "key in header and query",
                "/x?api_key=ka",
                "X-Api-Key: ka\r\n".to_string(),
                b"",
            ),
            (
                "key in the query twice",
                "/x?api_key=ka&api_key=ka",
                String::new(),
                b"",
            ),
            (
                "Origin twice",
                "/x",
                "X-Api-Key: ka\r\nOrigin: https://app.test\r\nOrigin: https://evil.test\r\n"
                    .to_string(),
                b"",
            ),
            (
                "Content-Type twice",
                "/x",
                format!("X-Api-Key: ka\r\n{json}Content-Type: text/plain\r\n"),
                b"{}",
            ),
        ] {
            let method = if body.is_empty() { "GET" } else { "POST" };
            let r = request(g.addr, method, path, &headers, body);
            assert_eq!(r.status, 400, "{driver} {name}");
            assert_eq!(
                r.header("content-type"),
                Some("application/problem+json"),
                "{name}"
            );
        }
        assert!(
            origin.records().is_empty(),
            "{driver}: nothing refused reached the upstream"
        );
    }
}
