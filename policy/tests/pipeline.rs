//! The pipeline: stages built from their tables in order, the first answer short-circuits the
//! rest, and every stage kind's fields are documented in the example configuration.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::SocketAddr;
use std::time::Instant;

use policy::{Exchange, Params, Pipeline, RouteId, Verdict};

fn config(routes: &str) -> conf::Config {
    conf::load_str("p.toml", routes).unwrap()
}

#[test]
fn first_answer_short_circuits_later_stages() {
    let cfg = config(
        "[[route]]\npath = \"/\"\n[[route.policy]]\nkind = \"respond\"\nstatus = 503\nbody = \"first\"\n[[route.policy]]\nkind = \"respond\"\nbody = \"second\"\n",
    );
    let pipelines = Pipeline::build_all(&cfg, 1).unwrap().routes;
    let mut head = proto::RequestHead::with_capacity(8);
    let buf = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    proto::parse_request(buf, &mut head, &proto::Limits::default()).unwrap();
    let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let mut ex = Exchange::new(peer, Instant::now(), RouteId(0), Params::default());
    match pipelines[0].on_request(&head, buf, &mut ex) {
        Verdict::Respond(r) => {
            assert_eq!(r.status, 503);
            assert_eq!(&r.body[..], b"first");
        }
        other => panic!("the respond stage answers, not {other:?}"),
    }
}

#[test]
fn a_route_without_stages_continues() {
    let cfg = config(
        "[[upstream]]\nname = \"u\"\ntargets = [\"127.0.0.1:1\"]\n[[route]]\nupstream = \"u\"\n",
    );
    let pipelines = Pipeline::build_all(&cfg, 1).unwrap().routes;
    assert!(pipelines[0].is_empty());
}

#[test]
fn stage_errors_name_the_route_and_point_at_the_stage_table() {
    let cfg = config(
        "[[route]]\nname = \"r\"\npath = \"/\"\n\n[[route.policy]]\nkind = \"respond\"\nstatus = 700\n",
    );
    let e = Pipeline::build_all(&cfg, 1).err().unwrap().to_string();
    assert_eq!(
        e,
        "p.toml:5:1: route `r` [[route.policy]] kind = \"respond\": status 700 is not allowed: expected 200–599 (not 204 or 304)"
    );
}

#[test]
fn every_stage_field_is_documented_in_shardgate_toml() {
    let text = include_str!("../../conf/examples/shardgate.toml");
    for kind in policy::KINDS {
        assert!(
            text.contains(&format!("kind = \"{kind}\"")),
            "stage `{kind}` has no example"
        );
        let fields = policy::stages::config_fields(kind);
        assert!(!fields.is_empty(), "{kind}");
        for f in fields {
            // a field is a `key = ` line, or a table of its own
            let documented = text.contains(&format!("\n{f} = "))
                || text.contains(&format!("\n[route.policy.{f}]\n"))
                || text.contains(&format!("\n[[route.policy.{f}]]\n"));
            assert!(documented, "stage `{kind}` field `{f}` is not documented");
        }
    }
}

#[test]
fn refusals_are_counted_per_route_and_reason() {
    let cfg = conf::load_str(
        "t.toml",
        "[[route]]\npath = \"/{*rest}\"\n[[route.policy]]\nkind = \"ip\"\ndeny = [\"127.0.0.0/8\"]\n[[route.policy]]\nkind = \"respond\"\n",
    )
    .unwrap();
    let pipelines = Pipeline::build_all(&cfg, 1).unwrap().routes;
    let mut head = proto::RequestHead::with_capacity(8);
    let buf = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    proto::parse_request(buf, &mut head, &proto::Limits::default()).unwrap();
    for (peer, refused) in [
        ("127.0.0.1:1", true),
        ("10.0.0.1:1", false),
        ("127.0.0.2:1", true),
    ] {
        let mut ex = Exchange::new(
            peer.parse().unwrap(),
            Instant::now(),
            RouteId(0),
            Params::default(),
        );
        let v = pipelines[0].on_request(&head, buf, &mut ex);
        assert_eq!(matches!(v, Verdict::Reject(_)), refused, "{peer}");
    }
    assert_eq!(pipelines[0].refusals(), vec![("ip.denied", 2)]);
}
