//! What the gateway changes in forwarded heads: hop-by-hop fields removed, X-Forwarded-* and
//! Via added, Host rewritten on request; local answers (404, 405, respond stage).
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
use support::{DRIVERS, Gateway, request, route_all};

#[test]
fn hop_by_hop_fields_are_removed_and_forwarding_fields_added() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all(origin.addr, "")) else {
            continue;
        };
        origin.reset_counts();
        let r = request(
            g.addr,
            "GET",
            "/h",
            "Connection: X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: websocket\r\nProxy-Authorization: Basic x\r\nProxy: http://evil\r\nX-Forwarded-For: 10.0.0.1\r\nVia: 1.0 edge\r\nX-Keep: yes\r\n",
            b"",
        );
        assert_eq!(r.status, 200);
        let rec = origin.records().pop().unwrap();
        for gone in [
            "x-secret",
            "keep-alive",
            "te",
            "trailer",
            "upgrade",
            "proxy-authorization",
            "proxy",
        ] {
            assert_eq!(
                rec.header(gone),
                None,
                "{d}: {gone} reached the origin:\n{}",
                rec.head
            );
        }
        assert_eq!(rec.header("connection"), None, "{}", rec.head);
        assert_eq!(rec.header("x-keep").as_deref(), Some("yes"));
        assert_eq!(
            rec.header("x-forwarded-for").as_deref(),
            Some("10.0.0.1, 127.0.0.1")
        );
        assert_eq!(rec.header("x-forwarded-proto").as_deref(), Some("http"));
        assert_eq!(
            rec.header("x-forwarded-host").as_deref(),
            Some("test.local")
        );
        assert_eq!(
            rec.header("via").as_deref(),
            Some("1.0 edge, 1.1 shardgate")
        );
        assert_eq!(rec.header("host").as_deref(), Some("test.local"));
        // response side: the origin's Keep-Alive and the field its Connection names are gone
        assert_eq!(r.header("keep-alive"), None);
        assert_eq!(r.header("x-drop-me"), None);
        assert_eq!(r.header("via"), Some("1.1 shardgate"));
        assert_eq!(r.header("connection"), Some("close"));
    }
}

#[test]
fn forwarding_fields_can_be_switched_off_and_host_rewritten() {
    let origin = Origin::start();
    let server = "shards = 1\n[server.forwarding]\nx_forwarded_for = false\nx_forwarded_proto = false\nx_forwarded_host = false\nvia = false\n";
    for d in DRIVERS {
        let Some(g) = Gateway::start(
            d,
            server,
            &route_all(origin.addr, "host = \"backend.internal\""),
        ) else {
            continue;
        };
        origin.reset_counts();
        let r = request(g.addr, "GET", "/h", "X-Forwarded-For: 10.0.0.1\r\n", b"");
        assert_eq!(r.status, 200);
        let rec = origin.records().pop().unwrap();
        assert_eq!(rec.header("host").as_deref(), Some("backend.internal"));
        assert_eq!(
            rec.header("x-forwarded-for").as_deref(),
            Some("10.0.0.1"),
            "passed through untouched"
        );
        assert_eq!(rec.header("x-forwarded-proto"), None);
        assert_eq!(rec.header("via"), None);
        assert_eq!(r.header("via"), None);
    }
}

#[test]
fn absolute_form_is_forwarded_in_origin_form_with_its_authority_as_host() {
    let origin = Origin::start();
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all(origin.addr, "")) else {
            continue;
        };
        origin.reset_counts();
        let out = support::raw(
            g.addr,
            b"GET http://api.example:81/p?q=1 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n",
        );
        assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"), "{d}");
        let rec = origin.records().pop().unwrap();
        assert!(
            rec.head
                .starts_with("GET /p?q=1 HTTP/1.1\r\nHost: api.example:81\r\n"),
            "{}",
            rec.head
        );
    }
}

#[test]
fn no_route_is_404_and_wrong_method_405_with_allow() {
    let origin = Origin::start();
    let routes = format!(
        "[[upstream]]\nname = \"o\"\ntargets = [\"{}\"]\n\n[[route]]\npath = \"/api/{{id}}\"\nmethods = [\"GET\", \"PUT\"]\nupstream = \"o\"\n\n[[route]]\nname = \"health\"\npath = \"/health\"\n[[route.policy]]\nkind = \"respond\"\nbody = \"up\\n\"\n",
        origin.addr
    );
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &routes) else {
            continue;
        };
        origin.reset_counts();
        let r = request(g.addr, "GET", "/nope", "", b"");
        assert_eq!(r.status, 404);
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        assert!(String::from_utf8_lossy(&r.body).contains("\"status\":404"));
        let r = request(g.addr, "DELETE", "/api/7", "", b"");
        assert_eq!(r.status, 405);
        assert_eq!(r.header("allow"), Some("GET, PUT"));
        let r = request(g.addr, "GET", "/health", "", b"");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"up\n"[..]));
        assert!(
            r.header("date")
                .is_some_and(|v| v.ends_with(" GMT") && v.len() == 29),
            "{d}: local answers carry Date"
        );
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        let r = request(g.addr, "GET", "/api/7", "", b"");
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header_all("date").len(),
            1,
            "{d}: the origin sent no Date, the gateway adds one"
        );
        assert_eq!(
            origin.records().len(),
            1,
            "only the routed request reached the origin"
        );
    }
}

#[test]
fn http10_keep_alive_is_acknowledged_and_via_names_the_received_version() {
    let origin = Origin::start();
    let routes = format!(
        "{}\n[[route]]\npath = \"/local\"\n[[route.policy]]\nkind = \"respond\"\nbody = \"l\"\n",
        route_all(origin.addr, "")
    );
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &routes) else {
            continue;
        };
        use std::io::Write;
        let mut s = g.connect();
        s.write_all(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let mut p = Vec::new();
        let r = support::read_response(&mut s, &mut p, false);
        assert_eq!(r.header("connection"), Some("keep-alive"), "{d}");
        let rec = origin.records().pop().unwrap();
        assert_eq!(rec.header("via").as_deref(), Some("1.0 shardgate"));
        s.write_all(b"GET /local HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let r = support::read_response(&mut s, &mut p, false);
        assert_eq!(
            (r.body.as_slice(), r.header("connection")),
            (&b"l"[..], Some("keep-alive"))
        );
        s.write_all(b"GET /missing-host-route HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let r = support::read_response(&mut s, &mut p, false);
        assert_eq!(
            (r.status, r.header("connection")),
            (200, Some("keep-alive"))
        );
    }
}

#[test]
fn local_answers_keep_the_connection_alive() {
    let routes =
        "[[route]]\npath = \"/health\"\n[[route.policy]]\nkind = \"respond\"\nbody = \"ok\"\n";
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", routes) else {
            continue;
        };
        use std::io::Write;
        let mut s = g.connect();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\nGET /missing HTTP/1.1\r\nHost: a\r\n\r\nHEAD /health HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        let mut p = Vec::new();
        assert_eq!(support::read_response(&mut s, &mut p, false).body, b"ok");
        assert_eq!(support::read_response(&mut s, &mut p, false).status, 404);
        let h = support::read_response(&mut s, &mut p, true);
        assert_eq!((h.status, h.header("content-length")), (200, Some("2")));
        assert!(p.is_empty(), "{d}: HEAD answer carried a body");
    }
}
