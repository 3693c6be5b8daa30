//! The admin API beyond metrics, against a real gateway: `/stats` counts what was sent,
//! `/config` hides secrets, `POST /reload` applies a good file and refuses a broken one with
//! its location, `POST /cache/purge` reaches every shard, the token guards everything (Basic
//! for browsers), and the status page renders the same figures in headless Chromium.
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

use support::browser::{chromium, headless, screenshot};
use support::origin::Origin;
use support::{Gateway, admin, request};

fn routes(origin: SocketAddr, extra_route: &str) -> String {
    format!(
        "[[upstream]]\nname = \"origin\"\ntargets = [\"{origin}\"]\n\n\
         [[route]]\nname = \"api\"\npath = \"/api/{{*rest}}\"\nupstream = \"origin\"\n\n\
         {extra_route}\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"adm1n-t0ken\"\n"
    )
}

const AUTH: &str = "Authorization: Bearer adm1n-t0ken\r\n";

fn json(a: SocketAddr, path: &str) -> serde_json::Value {
    let r = request(a, "GET", path, AUTH, b"");
    assert_eq!(r.status, 200, "{path}");
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn stats_config_reload_and_purge() {
    let origin = Origin::start();
    let Some(g) = Gateway::start("auto", "shards = 2", &routes(origin.addr, "")) else {
        return;
    };
    let a = admin(&g);
    for i in 0..9 {
        assert_eq!(
            request(g.addr, "GET", &format!("/api/{i}"), "", b"").status,
            200
        );
    }
    assert_eq!(request(g.addr, "GET", "/other", "", b"").status, 404);
    let s = json(a, "/stats");
    assert_eq!(s["requests"], 10);
    assert_eq!(s["shards"].as_array().unwrap().len(), 2);
    let api = s["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "api")
        .unwrap();
    assert_eq!(api["requests"], 9);
    assert_eq!(api["responses"]["2xx"], 9);
    assert!(api["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    let t = &s["targets"][0];
    assert_eq!(t["target"], origin.addr.to_string());
    assert_eq!(t["attempts"], 9);
    assert_eq!(t["up"], true);
    assert_eq!(s["listeners"][0]["address"], g.addr.to_string());

    // the running config, with the admin token hidden
    let r = request(a, "GET", "/config", AUTH, b"");
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body).unwrap();
    assert!(!text.contains("adm1n-t0ken"), "{text}");
    assert!(
        text.contains("<redacted>") && text.contains("/api/{*rest}"),
        "{text}"
    );

    // a broken file is refused with its location; the running config stays
    std::fs::write(
        g.config_path(),
        "[server]\nlisten = [\"127.0.0.1:0\"]\nshards = -1\n",
    )
    .unwrap();
    let r = request(
        a,
        "POST",
        "/reload",
        &format!("{AUTH}Content-Length: 0\r\n"),
        b"",
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert!(
        String::from_utf8_lossy(&r.body).contains("shardgate.toml:3:"),
        "{:?}",
        r.body
    );
    assert_eq!(request(g.addr, "GET", "/api/still", "", b"").status, 200);
    // a good one with a new route is applied before the answer
    let new_route = "[[route]]\nname = \"new\"\npath = \"/new\"\nupstream = \"origin\"\n\n";
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\ndriver = \"auto\"\nshards = 2\n{}",
        routes(origin.addr, new_route)
    );
    std::fs::write(g.config_path(), text).unwrap();
    let r = request(
        a,
        "POST",
        "/reload",
        &format!("{AUTH}Content-Length: 0\r\n"),
        b"",
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(request(g.addr, "GET", "/new", "", b"").status, 200);

    // purge reaches every shard (no response cache yet: nothing to drop)
    let r = request(
        a,
        "POST",
        "/cache/purge?prefix=/api/",
        &format!("{AUTH}Content-Length: 0\r\n"),
        b"",
    );
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (v["shards"].as_u64(), v["purged"].as_u64()),
        (Some(2), Some(0))
    );
    let bad = request(
        a,
        "POST",
        "/cache/purge",
        &format!("{AUTH}Content-Length: 0\r\n"),
        b"",
    );
    assert_eq!(bad.status, 400);
    assert_eq!(request(a, "GET", "/reload", AUTH, b"").status, 405);
}

#[test]
fn the_token_guards_every_resource_and_browsers_can_send_it() {
    let origin = Origin::start();
    let Some(g) = Gateway::start("auto", "", &routes(origin.addr, "")) else {
        return;
    };
    let a = admin(&g);
    for path in ["/", "/stats", "/config", "/metrics", "/healthz"] {
        let r = request(a, "GET", path, "", b"");
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"shardgate admin\"")
        );
    }
    let r = request(a, "POST", "/reload", "Content-Length: 0\r\n", b"");
    assert_eq!(r.status, 401);
    // "admin:adm1n-t0ken"
    let basic = "Authorization: Basic YWRtaW46YWRtMW4tdDBrZW4=\r\n";
    let r = request(a, "GET", "/", basic, b"");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    // the data port does not serve the admin's resources
    let r = request(g.addr, "GET", "/stats", AUTH, b"");
    assert!(!String::from_utf8_lossy(&r.body).contains("\"routes\""));
}

#[test]
fn the_status_page_renders_the_figures_in_headless_chromium() {
    let Some(bin) = chromium() else {
        println!("skipped: no chromium (Debian package `chromium`; .ci/run installs it)");
        return;
    };
    let origin = Origin::start();
    let rest = routes(origin.addr, "").replace("token = \"adm1n-t0ken\"\n", "");
    let Some(g) = Gateway::start("auto", "shards = 2", &rest) else {
        return;
    };
    let a = admin(&g);
    for i in 0..15 {
        assert_eq!(
            request(g.addr, "GET", &format!("/api/{i}"), "", b"").status,
            200
        );
    }
    for _ in 0..2 {
        assert_eq!(request(g.addr, "GET", "/none", "", b"").status, 404);
    }
    let profile = support::TempDir::new();
    let url = format!("http://{a}/");
    let dom = headless(bin, &profile.0, &["--dump-dom".into()], &url);
    let cell = |row: &str, col: &str| -> String {
        let key = format!("data-row=\"{row}\" data-col=\"{col}\">");
        let at = dom
            .find(&key)
            .unwrap_or_else(|| panic!("no cell {row}/{col} in:\n{dom}"));
        dom[at + key.len()..].split('<').next().unwrap().to_string()
    };
    assert_eq!(cell("api", "requests"), "15");
    assert_eq!(cell("api", "2xx"), "15");
    assert_eq!(cell("(unrouted)", "4xx"), "2");
    let target = format!("origin {}", origin.addr);
    assert_eq!(cell(&target, "health"), "up");
    assert_eq!(cell(&target, "attempts"), "15");
    assert_eq!(cell(&target, "circuit"), "closed");
    assert_eq!(cell(&g.addr.to_string(), "scheme"), "http");
    assert!(dom.contains("<b id=\"requests\">17</b>"), "{dom}");
    // the screenshot, kept as the test's artifact
    let shot = screenshot(bin, &profile.0, &url, "status-page.png", "1280,1000");
    println!("status page screenshot: {}", shot.display());
}
