//! The admin listener (`[admin]`): `GET /healthz`, `GET /readyz` (503 while draining) and
//! `GET /metrics` (Prometheus text from every shard's counters, asked for by message: the
//! shards copy their counters between requests, nothing is locked on their path). Its own
//! thread and socket, so no data listener can reach it; optional bearer token.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::control::{Control, ShardCounters};

/// Largest admin request head read.
const MAX_HEAD: usize = 8 * 1024;

/// How long a shard may take to send its counters for a scrape.
const SCRAPE_WAIT: Duration = Duration::from_secs(2);

/// Starts the admin listener on `addr`; the address it bound. It stops with the control side.
pub fn start(
    addr: SocketAddr,
    token: String,
    control: Weak<Control>,
    draining: Arc<AtomicBool>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("sg-admin".into())
        .spawn(move || {
            while control.strong_count() > 0 {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        serve(s, &token, &control, &draining);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })?;
    Ok(bound)
}

/// Answers one request on `s`, then closes it.
fn serve(mut s: TcpStream, token: &str, control: &Weak<Control>, draining: &AtomicBool) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::with_capacity(1024);
    let mut head = proto::RequestHead::with_capacity(64);
    let limits = proto::Limits::default();
    let mut chunk = [0u8; 1024];
    loop {
        match proto::parse_request(&buf, &mut head, &limits) {
            Ok(proto::Status::Complete(_)) => break,
            Ok(proto::Status::Partial) if buf.len() < MAX_HEAD => {}
            _ => {
                return answer(
                    &mut s,
                    400,
                    "application/problem+json",
                    &problem(400, "bad request"),
                );
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    }
    if !token.is_empty() {
        let want = format!("Bearer {token}");
        let got = head.value_of(&buf, b"authorization");
        if got != Some(want.as_bytes()) {
            return answer(
                &mut s,
                401,
                "application/problem+json",
                &problem(401, "admin token required"),
            );
        }
    }
    if head.method != proto::Method::Get {
        return answer(
            &mut s,
            405,
            "application/problem+json",
            &problem(405, "method not allowed"),
        );
    }
    match head.path_only(&buf) {
        b"/healthz" => answer(&mut s, 200, "text/plain; charset=utf-8", "ok\n"),
        b"/readyz" if draining.load(Ordering::Relaxed) => {
            answer(&mut s, 503, "text/plain; charset=utf-8", "draining\n")
        }
        b"/readyz" => answer(&mut s, 200, "text/plain; charset=utf-8", "ready\n"),
        b"/metrics" => {
            let Some(c) = control.upgrade() else {
                return answer(&mut s, 503, "text/plain; charset=utf-8", "stopping\n");
            };
            let text = metrics(&c.counters(SCRAPE_WAIT));
            answer(
                &mut s,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                &text,
            )
        }
        _ => answer(
            &mut s,
            404,
            "application/problem+json",
            &problem(404, "no such admin resource"),
        ),
    }
}

fn problem(status: u16, detail: &str) -> String {
    let mut out = Vec::new();
    policy::reply::problem_body(&mut out, status, detail);
    String::from_utf8_lossy(&out).into_owned()
}

fn answer(s: &mut TcpStream, status: u16, content_type: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        proto::write::reason_phrase(status),
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body.as_bytes());
}

/// A label value escaped for the text format.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family: its help, type and samples (`labels`, value).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
    for (labels, v) in samples {
        out.push_str(&format!("{name}{{{labels}}} {v}\n"));
    }
}

/// Samples of a counter each shard keeps as an array: one per shard and name, the name as
/// label `label`.
fn by_name(
    shards: &[ShardCounters],
    label: &str,
    names: &[&str],
    values: impl Fn(&ShardCounters) -> &[u64],
) -> Vec<(String, u64)> {
    shards
        .iter()
        .flat_map(|c| {
            names
                .iter()
                .zip(values(c))
                .map(move |(name, n)| (format!("shard=\"{}\",{label}=\"{name}\"", c.shard), *n))
        })
        .collect()
}

/// The Prometheus text exposition of every shard's counters.
pub fn metrics(shards: &[ShardCounters]) -> String {
    let mut out = String::new();
    let per = |f: &dyn Fn(&ShardCounters) -> u64| -> Vec<(String, u64)> {
        shards
            .iter()
            .map(|c| (format!("shard=\"{}\"", c.shard), f(c)))
            .collect()
    };
    family(
        &mut out,
        "shardgate_requests_total",
        "counter",
        "Exchanges begun.",
        &per(&|c| c.requests),
    );
    family(
        &mut out,
        "shardgate_requests_finished_total",
        "counter",
        "Exchanges finished.",
        &per(&|c| c.finished),
    );
    family(
        &mut out,
        "shardgate_connections_accepted_total",
        "counter",
        "Client connections accepted.",
        &per(&|c| c.accepted),
    );
    family(
        &mut out,
        "shardgate_connections_over_limit_total",
        "counter",
        "Connections refused over max_connections.",
        &per(&|c| c.over_limit),
    );
    family(
        &mut out,
        "shardgate_connections_open",
        "gauge",
        "Client connections open.",
        &per(&|c| c.open),
    );
    family(
        &mut out,
        "shardgate_retries_total",
        "counter",
        "Upstream attempts that retried another target.",
        &per(&|c| c.retries),
    );
    family(
        &mut out,
        "shardgate_tunnels_total",
        "counter",
        "Upgraded or CONNECT tunnels that ended.",
        &per(&|c| c.tunnels),
    );
    let outcomes = ["answered", "refused", "forwarded", "failed", "aborted"];
    let v = by_name(shards, "outcome", &outcomes, |c| &c.outcomes);
    family(
        &mut out,
        "shardgate_outcomes_total",
        "counter",
        "Finished exchanges by outcome.",
        &v,
    );
    let classes = ["none", "1xx", "2xx", "3xx", "4xx", "5xx"];
    let v = by_name(shards, "class", &classes, |c| &c.classes);
    family(
        &mut out,
        "shardgate_responses_total",
        "counter",
        "Finished exchanges by status class.",
        &v,
    );
    let mut v = Vec::new();
    for c in shards {
        for (route, reason, n) in &c.refusals {
            v.push((
                format!(
                    "shard=\"{}\",route=\"{}\",reason=\"{}\"",
                    c.shard,
                    esc(route),
                    esc(reason)
                ),
                *n,
            ));
        }
    }
    family(
        &mut out,
        "shardgate_refusals_total",
        "counter",
        "Requests refused by a stage, by route and reason.",
        &v,
    );
    let kinds = ["full_tls12", "full_tls13", "resumed"];
    let v = by_name(shards, "kind", &kinds, |c| &c.tls_handshakes);
    family(
        &mut out,
        "shardgate_tls_handshakes_total",
        "counter",
        "TLS handshakes with clients.",
        &v,
    );
    let mut v = Vec::new();
    for c in shards {
        for (reason, n) in &c.tls_failures {
            v.push((format!("shard=\"{}\",reason=\"{reason}\"", c.shard), *n));
        }
    }
    family(
        &mut out,
        "shardgate_tls_failures_total",
        "counter",
        "Failed TLS handshakes by reason.",
        &v,
    );
    let target = |f: &dyn Fn(&crate::control::TargetCounters) -> u64| -> Vec<(String, u64)> {
        shards
            .iter()
            .flat_map(|c| {
                c.targets.iter().map(move |t| {
                    let labels = format!(
                        "shard=\"{}\",upstream=\"{}\",target=\"{}\"",
                        c.shard,
                        esc(&t.upstream),
                        t.addr
                    );
                    (labels, f(t))
                })
            })
            .collect()
    };
    family(
        &mut out,
        "shardgate_target_up",
        "gauge",
        "1 unless the health checks marked the target down.",
        &target(&|t| u64::from(!t.down)),
    );
    family(
        &mut out,
        "shardgate_target_ejected",
        "gauge",
        "1 while outlier detection ejects the target.",
        &target(&|t| u64::from(t.ejected)),
    );
    family(
        &mut out,
        "shardgate_target_circuit_open",
        "gauge",
        "1 while the target's circuit is open or half-open.",
        &target(&|t| u64::from(t.circuit != "closed")),
    );
    family(
        &mut out,
        "shardgate_target_in_flight",
        "gauge",
        "Requests in flight to the target.",
        &target(&|t| u64::from(t.in_flight)),
    );
    out
}
