//! The `headers` stage through a real gateway: request fields set, added and removed before
//! the upstream sees them; response fields of the upstream's answer set, added and removed
//! before the client sees them; fields only the gateway writes refused at `--check`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use support::origin::Origin;
use support::{DRIVERS, Gateway, request, route_all_policy};

const STAGE: &str = r#"
[[route.policy]]
kind = "headers"
request_set = { "X-Env" = "prod" }
request_add = { "X-Tag" = "gw" }
request_remove = ["X-Debug"]
response_set = { "X-Origin" = "replaced" }
response_add = { "X-Added" = "1" }
response_remove = ["X-Body-Len"]
"#;

#[test]
fn request_and_response_fields_are_set_added_and_removed() {
    let origin = Origin::start();
    for driver in DRIVERS {
        let Some(g) = Gateway::start(driver, "", &route_all_policy(origin.addr, STAGE)) else {
            continue;
        };
        origin.reset_counts();
        let r = request(
            g.addr,
            "GET",
            "/size/5",
            "X-Env: dev\r\nX-Env: test\r\nX-Debug: 1\r\nX-Tag: client\r\n",
            b"",
        );
        assert_eq!(r.status, 200, "{driver}");
        let seen = origin.records();
        let head = &seen[0].head;
        let values = |name: &str| -> Vec<String> {
            head.split("\r\n")
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
                .collect()
        };
        assert_eq!(
            values("x-env"),
            ["prod"],
            "{driver}: set replaces every copy"
        );
        assert_eq!(
            values("x-tag"),
            ["client", "gw"],
            "{driver}: add keeps the client's"
        );
        assert!(values("x-debug").is_empty(), "{driver}: removed");
        // the response: the upstream's X-Origin replaced, one field added
        assert_eq!(r.header_all("x-origin"), ["replaced"], "{driver}");
        assert_eq!(r.header("x-added"), Some("1"), "{driver}");
        assert_eq!(r.body.len(), 5);
        // on the echo path the upstream sends X-Body-Len: removed
        let r = request(g.addr, "POST", "/echo", "Content-Length: 3\r\n", b"abc");
        assert_eq!(r.status, 200);
        assert!(r.header("x-body-len").is_none(), "{driver}: removed");
        assert_eq!(r.body, b"abc");
    }
}

#[test]
fn fields_only_the_gateway_writes_are_refused_at_check() {
    let dir = support::TempDir::new();
    let path = dir.0.join("t.toml");
    std::fs::write(
        &path,
        "[[route]]\npath = \"/\"\n[[route.policy]]\nkind = \"headers\"\nresponse_set = { \"Transfer-Encoding\" = \"chunked\" }\n[[route.policy]]\nkind = \"respond\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(support::bin())
        .arg("--check")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("t.toml:3:1: route `route[0]` [[route.policy]] kind = \"headers\": response `Transfer-Encoding`: hop-by-hop, framing and Host fields are written by the gateway"),
        "{err}"
    );
}
