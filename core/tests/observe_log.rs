//! The access log, request ids and trace context, against a real gateway and origin: one
//! JSON line per exchange with the id the client got back and the trace the origin saw;
//! templates; sampling; SIGUSR1 reopens a rotated file; a writer that cannot keep up drops
//! (and counts) lines while every request is still served.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use std::path::Path;

use support::origin::Origin;
use support::{Gateway, TempDir, admin, eventually, request};

/// The lines of `path` so far (none when it does not exist).
fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

fn config(origin: std::net::SocketAddr, log: &str) -> String {
    format!(
        "[[upstream]]\nname = \"origin\"\ntargets = [\"{origin}\"]\n\n\
         [[route]]\nname = \"api\"\npath = \"/api/{{*rest}}\"\nupstream = \"origin\"\n\n\
         [request_id]\ntrust_from = [\"10.0.0.0/8\"]\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\n[access_log]\nflush = \"5ms\"\n{log}\n"
    )
}

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn each_exchange_is_one_json_line_with_its_id_and_trace() {
    let origin = Origin::start();
    let dir = TempDir::new();
    let log = dir.0.join("access.log");
    let rest = config(origin.addr, &format!("path = \"{}\"", log.display()));
    let Some(g) = Gateway::start("auto", "shards = 2", &rest) else {
        return;
    };
    // an untrusted client's id is replaced; its valid traceparent is continued
    let r = request(
        g.addr,
        "GET",
        "/api/users?id=7",
        &format!("X-Request-Id: client-chosen\r\ntraceparent: {PARENT}\r\ntracestate: k=v\r\n"),
        b"",
    );
    assert_eq!(r.status, 200);
    let id = r.header("x-request-id").unwrap().to_string();
    assert_eq!(id.len(), 32, "a new id: {id}");
    assert_ne!(id, "client-chosen");
    let seen = origin.records().pop().unwrap();
    assert_eq!(seen.header("x-request-id").as_deref(), Some(id.as_str()));
    let tp = seen.header("traceparent").unwrap();
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{tp}"
    );
    assert!(tp.ends_with("-01"), "the sampled flag is kept: {tp}");
    assert_ne!(
        &tp[36..52],
        "00f067aa0ba902b7",
        "a new span id for the gateway's hop"
    );
    assert_eq!(seen.header("tracestate").as_deref(), Some("k=v"));
    assert_eq!(
        seen.head.matches("raceparent").count(),
        1,
        "one traceparent upstream"
    );
    // a malformed traceparent starts a new trace and drops its tracestate
    let r2 = request(
        g.addr,
        "POST",
        "/api/x",
        "Content-Length: 3\r\ntraceparent: 00-zz-bad\r\ntracestate: k=v\r\n",
        b"abc",
    );
    assert_eq!(r2.status, 200);
    let seen = origin.records().pop().unwrap();
    let tp2 = seen.header("traceparent").unwrap();
    assert_eq!(tp2.len(), 55);
    assert!(
        tp2.ends_with("-00"),
        "started unsampled (sample_ratio 0): {tp2}"
    );
    assert_eq!(seen.header("tracestate"), None);
    // state without a parent is not passed on either
    let r4 = request(g.addr, "GET", "/api/s", "tracestate: k=v\r\n", b"");
    assert_eq!(r4.status, 200);
    let seen = origin.records().pop().unwrap();
    assert_eq!(seen.header("tracestate"), None);
    assert_eq!(seen.header("traceparent").map(|t| t.len()), Some(55));
    // a request no route takes still gets an id, and a line
    let r3 = request(g.addr, "GET", "/nowhere", "", b"");
    assert_eq!(r3.status, 404);
    assert_eq!(r3.header("x-request-id").map(str::len), Some(32));

    assert!(eventually(|| lines(&log).len() == 4), "{:?}", lines(&log));
    let all: Vec<serde_json::Value> = lines(&log)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let first = all.iter().find(|v| v["request_id"] == id.as_str()).unwrap();
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/api/users?id=7");
    assert_eq!(first["status"], 200);
    assert_eq!(first["outcome"], "forwarded");
    assert_eq!(first["route"], "api");
    assert_eq!(first["upstream"], "origin");
    assert_eq!(first["target"], origin.addr.to_string());
    assert_eq!(first["client_ip"], "127.0.0.1");
    assert_eq!(first["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(first["consumer"], serde_json::Value::Null);
    assert!(first["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(first["upstream_ms"].as_f64().unwrap() >= 0.0);
    assert!(first["bytes_out"].as_u64().unwrap() > 0);
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    let post = all.iter().find(|v| v["method"] == "POST").unwrap();
    assert!(post["bytes_in"].as_u64().unwrap() >= 3);
    assert_eq!(post["trace_id"].as_str().map(str::len), Some(32));
    let lost = all.iter().find(|v| v["status"] == 404).unwrap();
    assert_eq!(lost["route"], serde_json::Value::Null);
    assert_eq!(lost["request_id"], r3.header("x-request-id").unwrap());
}

#[test]
fn templates_sampling_and_reopening_on_sigusr1() {
    let origin = Origin::start();
    let dir = TempDir::new();
    let log = dir.0.join("access.log");
    let rest = config(
        origin.addr,
        &format!(
            "path = \"{}\"\nformat = \"${{method}} ${{path}} ${{status}} ${{route}} ${{consumer}}\"\nsample = 0.0",
            log.display()
        ),
    );
    let Some(g) = Gateway::start("auto", "", &rest) else {
        return;
    };
    // sampled out: answered below 400; always logged: 404
    for _ in 0..5 {
        assert_eq!(request(g.addr, "GET", "/api/a", "", b"").status, 200);
    }
    assert_eq!(request(g.addr, "GET", "/none", "", b"").status, 404);
    assert!(
        eventually(|| lines(&log) == ["GET /none 404 - -"]),
        "{:?}",
        lines(&log)
    );
    // logrotate: move the file, signal, and the next lines go to a new file at the path
    let rotated = dir.0.join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    g.signal("USR1");
    assert!(eventually(|| g
        .log_lines()
        .iter()
        .any(|l| l.contains("SIGUSR1"))));
    assert!(eventually(|| {
        let _ = request(g.addr, "GET", "/after", "", b"");
        !lines(&log).is_empty()
    }));
    assert!(
        lines(&log).iter().all(|l| l == "GET /after 404 - -"),
        "{:?}",
        lines(&log)
    );
    assert_eq!(lines(&rotated), ["GET /none 404 - -"]);
}

#[test]
fn a_writer_that_cannot_keep_up_costs_lines_not_requests() {
    let origin = Origin::start();
    let dir = TempDir::new();
    // a FIFO nobody reads: the writer blocks opening it, as on a stuck disk
    let fifo = dir.0.join("stuck");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        println!("skipped: mkfifo is not available");
        return;
    }
    let rest = config(
        origin.addr,
        &format!("path = \"{}\"\nbuffer = \"1KiB\"", fifo.display()),
    );
    let Some(g) = Gateway::start("auto", "", &rest) else {
        return;
    };
    for i in 0..150 {
        let r = request(g.addr, "GET", &format!("/api/{i}"), "", b"");
        assert_eq!(r.status, 200, "request {i} served while the log is stuck");
    }
    let a = admin(&g);
    let m = String::from_utf8(request(a, "GET", "/metrics", "", b"").body).unwrap();
    let dropped: f64 = m
        .lines()
        .filter(|l| l.starts_with("shardgate_access_log_lines_total{") && l.contains("dropped"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert!(dropped > 0.0, "{m}");
    // let the writer go, so the gateway can stop cleanly
    std::thread::spawn(move || {
        let _ = std::fs::read(&fifo);
    });
}

#[test]
fn a_trusted_peers_id_is_kept_and_returned() {
    let origin = Origin::start();
    let rest = config(origin.addr, "").replace("10.0.0.0/8", "127.0.0.1");
    let Some(g) = Gateway::start("auto", "", &rest) else {
        return;
    };
    let r = request(g.addr, "GET", "/api/a", "x-request-id: abc-123\r\n", b"");
    assert_eq!(r.header_all("x-request-id"), ["abc-123"]);
    let seen = origin.records().pop().unwrap();
    assert_eq!(
        seen.head
            .to_ascii_lowercase()
            .matches("x-request-id")
            .count(),
        1
    );
    assert_eq!(seen.header("x-request-id").as_deref(), Some("abc-123"));
    // an id that is not visible ASCII or too long is replaced even from a trusted peer
    let long = "a".repeat(65);
    let r = request(
        g.addr,
        "GET",
        "/api/a",
        &format!("X-Request-Id: {long}\r\n"),
        b"",
    );
    assert_eq!(r.header("x-request-id").map(str::len), Some(32));
}
