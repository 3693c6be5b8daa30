//! The admin listener: /healthz, /readyz, /metrics in a Prometheus text format a strict
//! parser accepts, with counters that match the requests sent exactly; not reachable from a
//! data listener; a configured token is required.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;

use support::origin::Origin;
use support::{DRIVERS, Gateway, eventually, request, route_all};

/// The admin address the gateway logged.
fn admin(g: &Gateway) -> SocketAddr {
    assert!(eventually(|| g
        .log_lines()
        .iter()
        .any(|l| l.contains("admin on http://"))));
    let line = g
        .log_lines()
        .into_iter()
        .find(|l| l.contains("admin on http://"))
        .unwrap();
    line.split("admin on http://")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// A strict reader of the text exposition format: `# HELP`/`# TYPE` lines for each family
/// before its samples, names and label names of the allowed characters, quoted and escaped
/// label values, a number. Returns each sample keyed by its name and labels.
fn parse(text: &str) -> HashMap<String, f64> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut typed = std::collections::HashSet::new();
    let mut out = HashMap::new();
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(name_ok(name), "{line}");
            match kw {
                "HELP" => assert!(parts.next().is_some_and(|h| !h.is_empty()), "{line}"),
                "TYPE" => {
                    assert!(
                        ["counter", "gauge"].contains(&parts.next().unwrap()),
                        "{line}"
                    );
                    assert!(
                        typed.insert(name.to_string()),
                        "one TYPE per family: {line}"
                    );
                }
                _ => panic!("unknown comment: {line}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("value: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').unwrap_or_else(|| panic!("{line}"))),
            None => (series, ""),
        };
        assert!(
            name_ok(name) && typed.contains(name),
            "typed before its samples: {line}"
        );
        // labels: name="value" pairs, values with \\ \" \n escapes only
        let mut rest = labels;
        while !rest.is_empty() {
            let (lname, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
            assert!(name_ok(lname), "{line}");
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => assert!(
                        matches!(chars.next(), Some((_, '\\' | '"' | 'n'))),
                        "{line}"
                    ),
                    Some((i, '"')) => break i,
                    Some(_) => {}
                    None => panic!("unterminated label: {line}"),
                }
            };
            rest = after[end + 1..]
                .strip_prefix(',')
                .unwrap_or(&after[end + 1..]);
        }
        assert!(
            out.insert(series.to_string(), v).is_none(),
            "a series once: {line}"
        );
    }
    out
}

/// The sum of every series of `name` whose labels contain `with`.
fn sum(m: &HashMap<String, f64>, name: &str, with: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(&format!("{name}{{")) && k.contains(with))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn metrics_count_exactly_what_was_sent_and_stay_off_the_data_port() {
    for driver in DRIVERS {
        let origin = Origin::start();
        let rest = format!(
            "{}\n[admin]\nlisten = \"127.0.0.1:0\"\n",
            route_all(origin.addr, "")
        );
        let Some(g) = Gateway::start(driver, "shards = 2", &rest) else {
            continue;
        };
        let a = admin(&g);
        assert_eq!(request(a, "GET", "/healthz", "", b"").status, 200);
        assert_eq!(request(a, "GET", "/readyz", "", b"").status, 200);
        for i in 0..25 {
            assert_eq!(
                request(g.addr, "GET", &format!("/x{i}"), "", b"").status,
                200
            );
        }
        // the data port proxies /metrics like any path: the origin answers, not the admin
        let r = request(g.addr, "GET", "/metrics", "", b"");
        assert!(
            !String::from_utf8_lossy(&r.body).contains("shardgate_requests_total"),
            "{driver}"
        );
        let r = request(a, "GET", "/metrics", "", b"");
        assert_eq!(r.status, 200);
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        let m = parse(std::str::from_utf8(&r.body).unwrap());
        assert_eq!(
            sum(&m, "shardgate_requests_total", ""),
            26.0,
            "{driver}: 25 + /metrics on the data port"
        );
        assert_eq!(
            sum(&m, "shardgate_responses_total", "class=\"2xx\""),
            26.0,
            "{driver}"
        );
        assert_eq!(
            sum(&m, "shardgate_outcomes_total", "outcome=\"forwarded\""),
            26.0,
            "{driver}"
        );
        assert_eq!(
            sum(
                &m,
                "shardgate_target_up",
                &format!("target=\"{}\"", origin.addr)
            ),
            2.0,
            "{driver}: up on both shards"
        );
        assert_eq!(request(a, "GET", "/nothing", "", b"").status, 404);
        assert_eq!(
            request(a, "POST", "/metrics", "Content-Length: 0\r\n", b"").status,
            405
        );
    }
}

#[test]
fn a_token_is_required_when_configured() {
    for driver in DRIVERS {
        let origin = Origin::start();
        let rest = format!(
            "{}\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"s3cret\"\n",
            route_all(origin.addr, "")
        );
        let Some(g) = Gateway::start(driver, "", &rest) else {
            continue;
        };
        let a = admin(&g);
        assert_eq!(
            request(a, "GET", "/metrics", "", b"").status,
            401,
            "{driver}"
        );
        assert_eq!(
            request(a, "GET", "/metrics", "Authorization: Bearer nope\r\n", b"").status,
            401
        );
        assert_eq!(
            request(
                a,
                "GET",
                "/metrics",
                "Authorization: Bearer s3cret\r\n",
                b""
            )
            .status,
            200
        );
    }
}
