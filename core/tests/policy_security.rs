//! The security stages through a real shardgate and a recording origin: IP rules with trusted
//! proxies, rate limits (bounded tables, accuracy across shards), API keys; every refusal has
//! its status, fields and a problem+json body, and never reaches the origin.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::origin::Origin;
use support::{DRIVERS, Gateway, Response, read_response, request, route_all_policy};

fn assert_problem(r: &Response, status: u16) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{r:?}"
    );
    let body = String::from_utf8_lossy(&r.body);
    assert!(body.contains(&format!("\"status\":{status}")), "{body}");
}

#[test]
fn ip_rules_judge_the_peer_unless_a_trusted_proxy_names_the_client() {
    let origin = Origin::start();
    for d in DRIVERS {
        // allow-list without trusted proxies: a forged X-Forwarded-For changes nothing
        let conf = route_all_policy(
            origin.addr,
            "[[route.policy]]\nkind = \"ip\"\nallow = [\"10.0.0.0/8\"]\n",
        );
        let Some(g) = Gateway::start(d, "shards = 1", &conf) else {
            continue;
        };
        origin.reset_counts();
        let r = request(g.addr, "GET", "/a", "X-Forwarded-For: 10.1.2.3\r\n", b"");
        assert_problem(&r, 403);
        assert!(
            origin.records().is_empty(),
            "refused requests never reach the origin"
        );
        drop(g);

        // the peer (127.0.0.1) is a trusted proxy: the rightmost untrusted hop is the client
        let conf = route_all_policy(
            origin.addr,
            "[[route.policy]]\nkind = \"ip\"\nallow = [\"10.0.0.0/8\"]\ndeny = [\"10.6.6.6\"]\ntrusted_proxies = [\"127.0.0.1\"]\n",
        );
        let g = Gateway::start(d, "shards = 1", &conf).unwrap();
        assert_eq!(
            request(g.addr, "GET", "/a", "X-Forwarded-For: 10.1.2.3\r\n", b"").status,
            200
        );
        // the client forged 10.1.2.3 in front of its real address 8.8.8.8
        assert_problem(
            &request(
                g.addr,
                "GET",
                "/a",
                "X-Forwarded-For: 10.1.2.3, 8.8.8.8\r\n",
                b"",
            ),
            403,
        );
        assert_problem(
            &request(g.addr, "GET", "/a", "X-Forwarded-For: 10.6.6.6\r\n", b""),
            403,
        );
        assert_problem(&request(g.addr, "GET", "/a", "", b""), 403);
    }
}

#[test]
fn global_policy_applies_to_every_route() {
    let origin = Origin::start();
    let conf = format!(
        "[[policy]]\nkind = \"ip\"\ndeny = [\"127.0.0.0/8\"]\n\n[[route]]\npath = \"/health\"\n[[route.policy]]\nkind = \"respond\"\nbody = \"ok\"\n\n{}",
        route_all_policy(origin.addr, "")
    );
    let g = Gateway::start("epoll", "shards = 1", &conf).unwrap();
    assert_problem(&request(g.addr, "GET", "/health", "", b""), 403);
    assert_problem(&request(g.addr, "GET", "/other", "", b""), 403);
    assert!(origin.records().is_empty());
}

#[test]
fn rate_limit_refuses_with_retry_after_and_ratelimit_fields() {
    let origin = Origin::start();
    for d in DRIVERS {
        let conf = route_all_policy(
            origin.addr,
            "[[route.policy]]\nkind = \"rate_limit\"\nrate = 5\nper = \"1m\"\nheaders = true\n",
        );
        let Some(g) = Gateway::start(d, "shards = 1", &conf) else {
            continue;
        };
        origin.reset_counts();
        let answers: Vec<Response> = (0..8)
            .map(|_| request(g.addr, "GET", "/r", "", b""))
            .collect();
        let ok: Vec<&Response> = answers.iter().filter(|r| r.status == 200).collect();
        assert_eq!(ok.len(), 5, "{answers:?}");
        assert_eq!(
            ok[0].header("ratelimit-policy"),
            Some("\"default\";q=5;w=60")
        );
        assert_eq!(ok[0].header("ratelimit"), Some("\"default\";r=4;t=12"));
        let refused = answers.iter().find(|r| r.status == 429).unwrap();
        assert_problem(refused, 429);
        let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=12).contains(&retry), "{refused:?}");
        assert!(
            refused
                .header("ratelimit")
                .unwrap()
                .starts_with("\"default\";r=0;t=")
        );
        assert_eq!(
            origin.records().len(),
            5,
            "refused requests never reach the origin"
        );
    }
}

/// Sends `n` pipelined GETs with distinct `X-Key` values on one connection; returns statuses.
fn pipelined_keys(g: &Gateway, keys: impl Iterator<Item = u64>) -> Vec<u16> {
    let mut s = TcpStream::connect(g.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let keys: Vec<u64> = keys.collect();
    let mut out = Vec::new();
    for k in &keys {
        out.extend_from_slice(
            format!("GET /k HTTP/1.1\r\nHost: a\r\nX-Key: {k}\r\n\r\n").as_bytes(),
        );
    }
    s.write_all(&out).unwrap();
    let mut pending = Vec::new();
    keys.iter()
        .map(|_| read_response(&mut s, &mut pending, false).status)
        .collect()
}

#[test]
fn a_flood_of_distinct_keys_keeps_the_bucket_table_bounded() {
    // answered by the gateway itself, so only the limiter's memory is measured
    let conf = "[[route]]\npath = \"/{*rest}\"\n[[route.policy]]\nkind = \"rate_limit\"\nrate = 1\nper = \"1h\"\nkey = [\"header:X-Key\"]\nmax_keys = 1000\n[[route.policy]]\nkind = \"respond\"\nbody = \"ok\"\n";
    let g = Gateway::start("epoll", "shards = 1", conf).unwrap();
    // key 0 spends its one token, and is refused the second time
    assert_eq!(pipelined_keys(&g, [0, 0].into_iter()), vec![200, 429]);
    let before = g.rss_kib();
    for batch in 0..100 {
        let statuses = pipelined_keys(&g, (1..=1000).map(|i| batch * 1000 + i));
        assert!(
            statuses.iter().all(|s| *s == 200),
            "each new key has a fresh bucket"
        );
    }
    let grown = g.rss_kib().saturating_sub(before);
    assert!(grown < 8 * 1024, "100,000 keys grew RSS by {grown} KiB");
    // key 0's exhausted bucket was evicted long ago: it starts fresh
    assert_eq!(pipelined_keys(&g, [0].into_iter()), vec![200]);
}

#[test]
fn rate_limit_total_across_two_shards_is_the_configured_rate() {
    // 50/s gateway-wide, 25/s per shard; new connections land on either shard
    let conf = "[[route]]\npath = \"/{*rest}\"\n[[route.policy]]\nkind = \"rate_limit\"\nrate = 50\nburst = 10\nkey = [\"route\"]\n[[route.policy]]\nkind = \"respond\"\nbody = \"ok\"\n";
    let g = Gateway::start("epoll", "shards = 2\npin = false", conf).unwrap();
    let start = Instant::now();
    let window = Duration::from_secs(10);
    let (mut admitted, mut sent) = (0u64, 0u64);
    // offer about 150/s, three times the rate, for 10 s
    while start.elapsed() < window {
        let r = request(g.addr, "GET", "/x", "", b"");
        sent += 1;
        match r.status {
            200 => admitted += 1,
            429 => {}
            s => panic!("unexpected {s}"),
        }
        let due = start + Duration::from_micros(6_667 * sent);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    let secs = start.elapsed().as_secs_f64();
    // rate × time plus at most the burst; within ±10 %
    let expected = 50.0 * secs + 10.0;
    let ratio = admitted as f64 / expected;
    assert!(
        (0.9..=1.1).contains(&ratio),
        "admitted {admitted} of {sent} in {secs:.1} s; expected ≈{expected:.0}"
    );
}

#[test]
fn api_keys_identify_consumers_and_refuse_the_rest() {
    let origin = Origin::start();
    // sha256("s3cret")
    let digest = "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0";
    let policy = format!(
        "[[route.policy]]\nkind = \"api_key\"\nquery = \"api_key\"\n[[route.policy.consumers]]\nname = \"billing\"\nkey_sha256 = \"{digest}\"\n"
    );
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all_policy(origin.addr, &policy))
        else {
            continue;
        };
        origin.reset_counts();
        let missing = request(g.addr, "GET", "/a", "", b"");
        assert_problem(&missing, 401);
        assert_eq!(missing.header("www-authenticate"), Some("ApiKey"));
        assert_problem(
            &request(g.addr, "GET", "/a", "X-Api-Key: wrong\r\n", b""),
            401,
        );
        assert!(origin.records().is_empty());

        let ok = request(
            g.addr,
            "GET",
            "/a",
            "X-Api-Key: s3cret\r\nX-Consumer-Id: admin\r\n",
            b"",
        );
        assert_eq!(ok.status, 200);
        let rec = origin.records().pop().unwrap();
        assert_eq!(
            rec.header("x-consumer-id").as_deref(),
            Some("billing"),
            "{}",
            rec.head
        );
        assert_eq!(
            rec.head.matches("X-Consumer-Id").count() + rec.head.matches("x-consumer-id").count(),
            1,
            "{}",
            rec.head
        );
        assert!(
            !rec.head.contains("admin"),
            "the spoofed copy is dropped: {}",
            rec.head
        );

        let q = request(g.addr, "GET", "/a?x=1&api_key=s3cret&y=2", "", b"");
        assert_eq!(q.status, 200);
        let rec = origin.records().pop().unwrap();
        assert_eq!(
            rec.target, "/a?x=1&y=2",
            "the key is stripped before forwarding"
        );
    }
}

#[test]
fn validate_refuses_methods_types_headers_queries_and_bodies() {
    let origin = Origin::start();
    let policy = "[[route.policy]]\nkind = \"validate\"\nmethods = [\"GET\", \"POST\"]\nmax_body = \"1KiB\"\ncontent_types = [\"application/json\"]\nrequired_headers = [\"X-Request-Id\"]\nmax_query_length = 20\nmax_query_params = 2\n";
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all_policy(origin.addr, policy))
        else {
            continue;
        };
        origin.reset_counts();
        let id = "X-Request-Id: 1\r\n";
        let r = request(g.addr, "DELETE", "/v", id, b"");
        assert_problem(&r, 405);
        assert_eq!(r.header("allow"), Some("GET, POST"));
        assert_problem(&request(g.addr, "GET", "/v", "", b""), 400);
        assert_problem(&request(g.addr, "GET", "/v?a=1&b=2&c=3", id, b""), 400);
        assert_problem(
            &request(g.addr, "GET", "/v?aaaaaaaaaaaaaaaaaaaaa=1", id, b""),
            414,
        );
        let json = "Content-Type: application/json; charset=utf-8\r\n";
        assert_problem(
            &request(
                g.addr,
                "POST",
                "/v",
                &format!("{id}Content-Type: text/plain\r\nContent-Length: 2\r\n"),
                b"{}",
            ),
            415,
        );
        let big = vec![b'x'; 1025];
        assert_problem(
            &request(
                g.addr,
                "POST",
                "/v",
                &format!("{id}{json}Content-Length: 1025\r\n"),
                &big,
            ),
            413,
        );
        // chunked, one byte over the limit: cut off before anything is forwarded
        let body = support::chunked(&big, 100);
        assert_problem(
            &request(
                g.addr,
                "POST",
                "/v",
                &format!("{id}{json}Transfer-Encoding: chunked\r\n"),
                &body,
            ),
            413,
        );
        assert!(origin.records().is_empty(), "{:?}", origin.records());
        // exactly at the limit passes
        let ok = request(
            g.addr,
            "POST",
            "/v?a=1",
            &format!("{id}{json}Transfer-Encoding: chunked\r\n"),
            &support::chunked(&big[..1024], 100),
        );
        assert_eq!(ok.status, 200);
        assert_eq!(origin.records().pop().unwrap().body_len, 1024);
    }
}

#[test]
fn paths_are_normalised_before_routing_and_traversal_refused() {
    let origin = Origin::start();
    let conf = format!(
        "[[route]]\npath = \"/admin\"\n[[route.policy]]\nkind = \"respond\"\nbody = \"admin\"\n\n{}",
        route_all_policy(origin.addr, "")
    );
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &conf) else {
            continue;
        };
        origin.reset_counts();
        assert_problem(
            &request(g.addr, "GET", "/static/..%2f..%2fetc/passwd", "", b""),
            400,
        );
        assert_problem(
            &request(g.addr, "GET", "/static/../../etc/passwd", "", b""),
            400,
        );
        assert_problem(&request(g.addr, "GET", "/a%5c..%5cb", "", b""), 400);
        assert_problem(&request(g.addr, "GET", "/a%00", "", b""), 400);
        assert!(origin.records().is_empty());
        // the route is chosen on the normalised path
        assert_eq!(request(g.addr, "GET", "/%61dmin", "", b"").body, b"admin");
        assert_eq!(
            request(g.addr, "GET", "/public/../admin", "", b"").body,
            b"admin"
        );
        // and the upstream gets the normalised path
        assert_eq!(
            request(g.addr, "GET", "/a/./b/../c%7e?x=%2F", "", b"").status,
            200
        );
        assert_eq!(origin.records().pop().unwrap().target, "/a/c~?x=%2F");
    }
    // switched off: paths go through as received
    let g = Gateway::start(
        "epoll",
        "shards = 1\nnormalize_path = false",
        &route_all_policy(origin.addr, ""),
    )
    .unwrap();
    origin.reset_counts();
    assert_eq!(request(g.addr, "GET", "/a/./b", "", b"").status, 200);
    assert_eq!(origin.records().pop().unwrap().target, "/a/./b");
}

#[test]
fn concurrency_limit_sheds_beyond_max_and_frees_slots() {
    let origin = Origin::start();
    let policy = "[[route.policy]]\nkind = \"concurrency\"\nmax = 2\nretry_after = 3\n";
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all_policy(origin.addr, policy))
        else {
            continue;
        };
        let addr = g.addr;
        let slow: Vec<_> = (0..2)
            .map(|_| std::thread::spawn(move || request(addr, "GET", "/slow/800", "", b"").status))
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let shed = request(addr, "GET", "/fast", "", b"");
        assert_problem(&shed, 503);
        assert_eq!(shed.header("retry-after"), Some("3"));
        for t in slow {
            assert_eq!(t.join().unwrap(), 200);
        }
        // both slots were given back, also by a refused and a failed exchange
        assert_eq!(request(addr, "GET", "/fast", "", b"").status, 200);
        assert_eq!(request(addr, "GET", "/fast", "", b"").status, 200);
    }
}

#[test]
fn json_bodies_are_checked_against_the_schema() {
    let origin = Origin::start();
    let dir = support::TempDir::new();
    let schema = dir.0.join("order.json");
    std::fs::write(
        &schema,
        r#"{"type":"object","required":["qty"],"properties":{"qty":{"type":"integer","minimum":1}}}"#,
    )
    .unwrap();
    let policy = format!(
        "[[route.policy]]\nkind = \"validate\"\njson_schema = \"{}\"\njson_max_body = \"100B\"\n",
        schema.display()
    );
    for d in DRIVERS {
        let Some(g) = Gateway::start(d, "shards = 1", &route_all_policy(origin.addr, &policy))
        else {
            continue;
        };
        origin.reset_counts();
        let ok = request(
            g.addr,
            "POST",
            "/o",
            "Content-Length: 11\r\n",
            br#"{"qty": 20}"#,
        );
        assert_eq!(ok.status, 200);
        let rec = origin.records().pop().unwrap();
        assert_eq!(rec.body, br#"{"qty": 20}"#);
        // a chunked body is read whole and forwarded with its length
        let body = support::chunked(br#"{"qty": 3}"#, 4);
        let ok = request(
            g.addr,
            "POST",
            "/o",
            "Transfer-Encoding: chunked\r\n",
            &body,
        );
        assert_eq!(ok.status, 200);
        let rec = origin.records().pop().unwrap();
        assert_eq!(rec.body, br#"{"qty": 3}"#);
        assert_eq!(
            rec.header("content-length").as_deref(),
            Some("10"),
            "{}",
            rec.head
        );
        assert!(rec.header("transfer-encoding").is_none(), "{}", rec.head);

        let bad = request(
            g.addr,
            "POST",
            "/o",
            "Content-Length: 10\r\n",
            br#"{"qty": 0}"#,
        );
        assert_problem(&bad, 422);
        assert!(
            String::from_utf8_lossy(&bad.body).contains("at /qty"),
            "{bad:?}"
        );
        let missing = request(g.addr, "POST", "/o", "Content-Length: 2\r\n", b"{}");
        assert_problem(&missing, 422);
        assert_problem(
            &request(g.addr, "POST", "/o", "Content-Length: 8\r\n", b"not json"),
            400,
        );
        let big = format!("{{\"qty\": 1, \"pad\": \"{}\"}}", "x".repeat(200));
        assert_problem(
            &request(
                g.addr,
                "POST",
                "/o",
                &format!("Content-Length: {}\r\n", big.len()),
                big.as_bytes(),
            ),
            413,
        );
        assert_problem(
            &request(
                g.addr,
                "POST",
                "/o",
                "Transfer-Encoding: chunked\r\n",
                &support::chunked(big.as_bytes(), 50),
            ),
            413,
        );
        assert_eq!(
            origin.records().len(),
            2,
            "refused bodies never reach the origin"
        );
        // bodiless requests are not read
        assert_eq!(request(g.addr, "GET", "/o", "", b"").status, 200);
    }
}
