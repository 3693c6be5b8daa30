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

use support::origin::Origin;
use support::{DRIVERS, Gateway, admin, request, route_all};

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
    let mut typed: Vec<(String, String)> = Vec::new();
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
                    let kind = parts.next().unwrap();
                    assert!(
                        ["counter", "gauge", "histogram", "summary"].contains(&kind),
                        "{line}"
                    );
                    assert!(
                        !typed.iter().any(|(n, _)| n == name),
                        "one TYPE per family: {line}"
                    );
                    typed.push((name.to_string(), kind.to_string()));
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
        // a sample belongs to the family typed last: its name, or the name with a suffix
        // its type allows
        let (family, kind) = typed.last().unwrap_or_else(|| panic!("untyped: {line}"));
        let suffix = name.strip_prefix(family.as_str());
        let allowed: &[&str] = match kind.as_str() {
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["", "_sum", "_count"],
            _ => &[""],
        };
        assert!(
            name_ok(name) && suffix.is_some_and(|s| allowed.contains(&s)),
            "typed before its samples: {line}"
        );
        if v.is_nan() || v < 0.0 {
            panic!("a negative or NaN value: {line}");
        }
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

/// The value of the one series `name{labels}`.
fn one(m: &HashMap<String, f64>, name: &str, labels: &str) -> f64 {
    *m.get(&format!("{name}{{{labels}}}"))
        .unwrap_or_else(|| panic!("no series {name}{{{labels}}}"))
}

#[test]
fn routes_and_targets_are_counted_and_timed_over_every_shard() {
    for driver in DRIVERS {
        let origin = Origin::start();
        let rest = format!(
            "[[upstream]]\nname = \"origin\"\ntargets = [\"{}\"]\n\n\
             [[route]]\nname = \"api\"\npath = \"/api/{{*rest}}\"\nupstream = \"origin\"\n\n\
             [[route]]\nname = \"keyed\"\npath = \"/keyed\"\nupstream = \"origin\"\n\
             [[route.policy]]\nkind = \"api_key\"\nconsumers = [{{ name = \"c\", key_sha256 = \"{}\" }}]\n\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n",
            origin.addr,
            "ab".repeat(32)
        );
        let Some(g) = Gateway::start(driver, "shards = 2", &rest) else {
            continue;
        };
        let a = admin(&g);
        for i in 0..12 {
            assert_eq!(
                request(g.addr, "GET", &format!("/api/{i}"), "", b"").status,
                200
            );
        }
        for _ in 0..3 {
            let r = request(g.addr, "POST", "/api/p", "Content-Length: 2\r\n", b"hi");
            assert_eq!(r.status, 200);
        }
        for _ in 0..4 {
            assert_eq!(request(g.addr, "GET", "/elsewhere", "", b"").status, 404);
        }
        for _ in 0..2 {
            assert_eq!(request(g.addr, "GET", "/keyed", "", b"").status, 401);
        }
        let r = request(a, "GET", "/metrics", "", b"");
        let m = parse(std::str::from_utf8(&r.body).unwrap());
        let route = "route=\"api\"";
        let responses = "shardgate_route_responses_total";
        assert_eq!(
            one(&m, responses, "route=\"api\",method=\"GET\",class=\"2xx\""),
            12.0,
            "{driver}"
        );
        assert_eq!(
            one(&m, responses, "route=\"api\",method=\"POST\",class=\"2xx\""),
            3.0
        );
        assert_eq!(
            one(&m, responses, "route=\"\",method=\"GET\",class=\"4xx\""),
            4.0
        );
        let refused = "shardgate_refusals_total";
        let by = "route=\"keyed\",stage=\"api_key\",reason=\"api_key.missing\"";
        assert_eq!(sum(&m, refused, by), 2.0, "{driver}");
        // the histogram: cumulative buckets ending in +Inf = count = exchanges of the route
        let hist = "shardgate_request_duration_seconds";
        let mut last = 0.0;
        let mut buckets: Vec<(f64, f64)> = m
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{hist}_bucket{{{route},le=")))
            .map(|(k, v)| {
                let le = k.split("le=\"").nth(1).unwrap().trim_end_matches("\"}");
                (le.parse::<f64>().unwrap_or(f64::INFINITY), *v)
            })
            .collect();
        buckets.sort_by(|x, y| x.0.total_cmp(&y.0));
        assert!(buckets.len() > 5, "{driver}");
        for (_, v) in &buckets {
            assert!(*v >= last, "cumulative buckets");
            last = *v;
        }
        assert_eq!(last, 15.0, "{driver}: +Inf holds every exchange");
        assert_eq!(one(&m, &format!("{hist}_count"), route), 15.0);
        assert!(one(&m, &format!("{hist}_sum"), route) > 0.0);
        assert_eq!(
            one(&m, "shardgate_upstream_duration_seconds_count", route),
            15.0
        );
        let p99 = one(
            &m,
            "shardgate_request_latency_seconds",
            &format!("{route},quantile=\"0.99\""),
        );
        assert!(p99 > 0.0 && p99 < 10.0, "{driver}: p99 {p99}");
        // the target: 15 attempts, every one answered; each new connection timed
        let t = format!("upstream=\"origin\",target=\"{}\"", origin.addr);
        assert_eq!(
            one(&m, "shardgate_upstream_attempts_total", &t),
            15.0,
            "{driver}"
        );
        assert_eq!(
            one(
                &m,
                "shardgate_upstream_errors_total",
                &format!("{t},kind=\"no_answer\"")
            ),
            0.0
        );
        let connects = one(&m, "shardgate_upstream_connect_seconds_count", &t);
        let reused = one(&m, "shardgate_upstream_reused_total", &t);
        assert_eq!(
            connects + reused,
            15.0,
            "{driver}: each attempt connected or reused"
        );
        assert!(connects >= 1.0);
    }
}

#[test]
fn draining_turns_readyz_503_and_closes_keep_alive_clients() {
    use std::io::Write;
    let origin = Origin::start();
    let rest = format!(
        "{}\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        route_all(origin.addr, "")
    );
    let Some(mut g) = Gateway::start("auto", "shards = 1\ndrain_timeout = \"10s\"", &rest) else {
        return;
    };
    let a = admin(&g);
    // a keep-alive request still in flight when SIGTERM comes
    let mut busy = g.connect();
    busy.write_all(b"GET /slow/1200 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert!(support::eventually(|| !origin.records().is_empty()));
    g.terminate();
    assert!(
        support::eventually(|| request(a, "GET", "/readyz", "", b"").status == 503),
        "/readyz says draining"
    );
    assert_eq!(request(a, "GET", "/healthz", "", b"").status, 200);
    let r = support::read_response(&mut busy, &mut Vec::new(), false);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("connection"),
        Some("close"),
        "the keep-alive client is told"
    );
    assert_eq!(g.wait_exit(std::time::Duration::from_secs(10)), Some(0));
}
