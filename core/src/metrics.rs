//! The Prometheus text exposition (format 0.0.4) of every shard's counters: per-shard
//! counters and gauges, and per-route and per-target figures merged over the shards
//! (histograms from the shards' hdrhistograms, added at scrape time).

use std::fmt::Write;

use crate::control::{ShardCounters, TargetCounters};
use crate::stats::{CLASSES, Latency, METHODS, RouteSnapshot};

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Quantiles of the latency summaries.
const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// A label value escaped for the text format.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition being written.
struct Out(String);

impl Out {
    /// A family's `# HELP` and `# TYPE` lines.
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    /// One sample.
    fn sample(&mut self, name: &str, labels: &str, v: impl std::fmt::Display) {
        let _ = writeln!(self.0, "{name}{{{labels}}} {v}");
    }

    /// A family with its samples (`labels`, value).
    fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
        self.head(name, kind, help);
        for (labels, v) in samples {
            self.sample(name, labels, v);
        }
    }

    /// A histogram family: one series of buckets, sum and count per `(labels, latency)`.
    fn histogram(&mut self, name: &str, help: &str, series: &[(String, &Latency)]) {
        self.head(name, "histogram", help);
        for (labels, l) in series {
            for le in BUCKETS {
                self.sample(
                    &format!("{name}_bucket"),
                    &format!("{labels},le=\"{le}\""),
                    l.count_le(le),
                );
            }
            let n = l.count();
            self.sample(
                &format!("{name}_bucket"),
                &format!("{labels},le=\"+Inf\""),
                n,
            );
            self.sample(&format!("{name}_sum"), labels, l.sum_seconds());
            self.sample(&format!("{name}_count"), labels, n);
        }
    }

    /// A summary family: quantiles, sum and count per `(labels, latency)`.
    fn summary(&mut self, name: &str, help: &str, series: &[(String, &Latency)]) {
        self.head(name, "summary", help);
        for (labels, l) in series {
            for q in QUANTILES {
                self.sample(name, &format!("{labels},quantile=\"{q}\""), l.quantile(q));
            }
            self.sample(&format!("{name}_sum"), labels, l.sum_seconds());
            self.sample(&format!("{name}_count"), labels, l.count());
        }
    }
}

/// One figure of a shard's counters.
type ShardValue<'a> = &'a dyn Fn(&ShardCounters) -> u64;

/// One figure of a target's state.
type TargetValue<'a> = &'a dyn Fn(&TargetCounters) -> u64;

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

/// Every route's record, added up over the shards, in the order first seen.
pub fn merged_routes(shards: &[ShardCounters]) -> Vec<RouteSnapshot> {
    let mut all: Vec<RouteSnapshot> = Vec::new();
    for r in shards.iter().flat_map(|c| &c.routes) {
        match all.iter_mut().find(|m| m.name == r.name) {
            Some(m) => m.merge(r),
            None => all.push(r.clone()),
        }
    }
    all
}

/// Every target's record, added up over the shards: (group, address, summed traffic, the
/// first shard's state).
pub fn merged_targets(shards: &[ShardCounters]) -> Vec<(TargetCounters, u32)> {
    let mut all: Vec<(TargetCounters, u32)> = Vec::new();
    for t in shards.iter().flat_map(|c| &c.targets) {
        match all
            .iter_mut()
            .find(|(m, _)| m.upstream == t.upstream && m.addr == t.addr)
        {
            Some((m, shards_down)) => {
                m.traffic.add(&t.traffic);
                m.in_flight += t.in_flight;
                *shards_down += u32::from(t.down);
            }
            None => all.push((t.clone(), u32::from(t.down))),
        }
    }
    all
}

/// The text exposition of every shard's counters.
pub fn text(shards: &[ShardCounters]) -> String {
    let mut out = Out(String::new());
    shard_families(&mut out, shards);
    route_families(&mut out, shards);
    target_families(&mut out, shards);
    out.0
}

/// Per-shard counters and gauges.
fn shard_families(out: &mut Out, shards: &[ShardCounters]) {
    let per = |f: &dyn Fn(&ShardCounters) -> u64| -> Vec<(String, u64)> {
        shards
            .iter()
            .map(|c| (format!("shard=\"{}\"", c.shard), f(c)))
            .collect()
    };
    let plain: [(&str, &str, &str, ShardValue<'_>); 11] = [
        (
            "shardgate_requests_total",
            "counter",
            "Exchanges begun.",
            &|c| c.requests,
        ),
        (
            "shardgate_requests_finished_total",
            "counter",
            "Exchanges finished.",
            &|c| c.finished,
        ),
        (
            "shardgate_connections_accepted_total",
            "counter",
            "Client connections accepted.",
            &|c| c.accepted,
        ),
        (
            "shardgate_connections_over_limit_total",
            "counter",
            "Connections refused over max_connections.",
            &|c| c.over_limit,
        ),
        (
            "shardgate_h2_connections_total",
            "counter",
            "HTTP/2 client connections established (preface and SETTINGS done).",
            &|c| c.h2[0],
        ),
        (
            "shardgate_h2_handshake_failures_total",
            "counter",
            "HTTP/2 client connections whose preface or SETTINGS failed or came too late.",
            &|c| c.h2[1],
        ),
        (
            "shardgate_h2_floods_total",
            "counter",
            "HTTP/2 client connections ended with ENHANCE_YOUR_CALM for a control-frame flood.",
            &|c| c.h2[2],
        ),
        (
            "shardgate_connections_open",
            "gauge",
            "Client connections open.",
            &|c| c.open,
        ),
        (
            "shardgate_connections_parked",
            "gauge",
            "Idle keep-alive client connections parked: holding no buffers.",
            &|c| c.parked,
        ),
        (
            "shardgate_retries_total",
            "counter",
            "Upstream attempts that retried another target.",
            &|c| c.retries,
        ),
        (
            "shardgate_tunnels_total",
            "counter",
            "Upgraded or CONNECT tunnels that ended.",
            &|c| c.tunnels,
        ),
    ];
    for (name, kind, help, f) in plain {
        out.family(name, kind, help, &per(f));
    }
    let v = by_name(shards, "state", &["written", "dropped", "lost"], |c| {
        &c.log_lines
    });
    out.family(
        "shardgate_access_log_lines_total",
        "counter",
        "Access-log lines: written, dropped (the writer was behind), lost (could not write).",
        &v,
    );
    let outcomes = ["answered", "refused", "forwarded", "failed", "aborted"];
    let v = by_name(shards, "outcome", &outcomes, |c| &c.outcomes);
    out.family(
        "shardgate_outcomes_total",
        "counter",
        "Finished exchanges by outcome.",
        &v,
    );
    let v = by_name(shards, "class", &CLASSES, |c| &c.classes);
    out.family(
        "shardgate_responses_total",
        "counter",
        "Finished exchanges by status class.",
        &v,
    );
    let mut v = Vec::new();
    for c in shards {
        for (route, reason, n) in &c.refusals {
            // reasons are `stage.what` (`api_key.missing`)
            let stage = reason.split_once('.').map_or(*reason, |(s, _)| s);
            let labels = format!(
                "shard=\"{}\",route=\"{}\",stage=\"{}\",reason=\"{}\"",
                c.shard,
                esc(route),
                esc(stage),
                esc(reason)
            );
            v.push((labels, *n));
        }
    }
    out.family(
        "shardgate_refusals_total",
        "counter",
        "Requests refused by a stage, by route, stage and reason.",
        &v,
    );
    for (gauge, family, kind, help) in [
        (
            false,
            "shardgate_stage_total",
            "counter",
            "Stages' own counts, by route, stage and name (a cache's hits, misses, bytes_served).",
        ),
        (
            true,
            "shardgate_stage_level",
            "gauge",
            "Stages' own levels, by route, stage and name (a cache's entries, bytes_stored).",
        ),
    ] {
        let mut v = Vec::new();
        for c in shards {
            for (route, stage, f) in c.stage_figures.iter().filter(|(_, _, f)| f.gauge == gauge) {
                let mut labels = format!(
                    "shard=\"{}\",route=\"{}\",stage=\"{}\",name=\"{}\"",
                    c.shard,
                    esc(route),
                    esc(stage),
                    f.name
                );
                for (k, v) in &f.labels {
                    let _ = write!(labels, ",{k}=\"{}\"", esc(v));
                }
                v.push((labels, f.value));
            }
        }
        out.family(family, kind, help, &v);
    }
    let kinds = ["full_tls12", "full_tls13", "resumed"];
    let v = by_name(shards, "kind", &kinds, |c| &c.tls_handshakes);
    out.family(
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
    out.family(
        "shardgate_tls_failures_total",
        "counter",
        "Failed TLS handshakes by reason.",
        &v,
    );
}

/// Per-route responses and latencies, merged over the shards.
fn route_families(out: &mut Out, shards: &[ShardCounters]) {
    let routes = merged_routes(shards);
    let mut v = Vec::new();
    for r in &routes {
        for (method, row) in METHODS.iter().zip(&r.responses) {
            for (class, n) in CLASSES.iter().zip(row) {
                if *n > 0 {
                    let labels = format!(
                        "route=\"{}\",method=\"{method}\",class=\"{class}\"",
                        esc(&r.name)
                    );
                    v.push((labels, *n));
                }
            }
        }
    }
    out.family(
        "shardgate_route_responses_total",
        "counter",
        "Finished exchanges by route (\"\" for unrouted), method and status class.",
        &v,
    );
    let label = |r: &RouteSnapshot| format!("route=\"{}\"", esc(&r.name));
    let total: Vec<_> = routes.iter().map(|r| (label(r), &r.total)).collect();
    let upstream: Vec<_> = routes
        .iter()
        .filter(|r| r.upstream.count() > 0)
        .map(|r| (label(r), &r.upstream))
        .collect();
    out.histogram(
        "shardgate_request_duration_seconds",
        "Exchange time, first request byte to last response byte, by route.",
        &total,
    );
    out.summary(
        "shardgate_request_latency_seconds",
        "Quantiles of the exchange time by route.",
        &total,
    );
    out.histogram(
        "shardgate_upstream_duration_seconds",
        "Time from sending a request upstream to its response head, by route.",
        &upstream,
    );
    out.summary(
        "shardgate_upstream_latency_seconds",
        "Quantiles of the upstream time by route.",
        &upstream,
    );
}

/// Per-target state on each shard and traffic merged over the shards.
fn target_families(out: &mut Out, shards: &[ShardCounters]) {
    let target = |f: &dyn Fn(&TargetCounters) -> u64| -> Vec<(String, u64)> {
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
    let states: [(&str, &str, TargetValue<'_>); 4] = [
        (
            "shardgate_target_up",
            "1 unless the health checks marked the target down.",
            &|t| u64::from(!t.down),
        ),
        (
            "shardgate_target_ejected",
            "1 while outlier detection ejects the target.",
            &|t| u64::from(t.ejected),
        ),
        (
            "shardgate_target_circuit_open",
            "1 while the target's circuit is open or half-open.",
            &|t| u64::from(t.circuit != "closed"),
        ),
        (
            "shardgate_target_in_flight",
            "Requests in flight to the target.",
            &|t| u64::from(t.in_flight),
        ),
    ];
    for (name, help, f) in states {
        out.family(name, "gauge", help, &target(f));
    }
    let merged = merged_targets(shards);
    let labels =
        |t: &TargetCounters| format!("upstream=\"{}\",target=\"{}\"", esc(&t.upstream), t.addr);
    let sum = |f: &dyn Fn(&TargetCounters) -> u64| -> Vec<(String, u64)> {
        merged.iter().map(|(t, _)| (labels(t), f(t))).collect()
    };
    out.family(
        "shardgate_upstream_attempts_total",
        "counter",
        "Attempts sent to the target.",
        &sum(&|t| t.traffic.attempts),
    );
    let mut v = Vec::new();
    for (t, _) in &merged {
        v.push((
            format!("{},kind=\"no_answer\"", labels(t)),
            t.traffic.errors,
        ));
        v.push((
            format!("{},kind=\"5xx\"", labels(t)),
            t.traffic.server_errors,
        ));
    }
    out.family(
        "shardgate_upstream_errors_total",
        "counter",
        "Attempts that got no answer (connect failure, reset, timeout, malformed) or a 5xx.",
        &v,
    );
    out.family(
        "shardgate_upstream_reused_total",
        "counter",
        "Attempts on a pooled keep-alive connection.",
        &sum(&|t| t.traffic.reused),
    );
    out.head(
        "shardgate_upstream_connect_seconds",
        "summary",
        "Time to open new connections to the target (TCP, and TLS where used).",
    );
    for (t, _) in &merged {
        let l = labels(t);
        out.sample(
            "shardgate_upstream_connect_seconds_sum",
            &l,
            t.traffic.connect_micros as f64 / 1e6,
        );
        out.sample(
            "shardgate_upstream_connect_seconds_count",
            &l,
            t.traffic.connects,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_figure_s_own_labels_are_escaped() {
        let c = ShardCounters {
            stage_figures: vec![(
                "r".to_string(),
                "ai",
                policy::Figure::labelled("usage_requests", 2, &[("consumer", "b\"ob\\\n")]),
            )],
            ..ShardCounters::default()
        };
        let t = text(&[c]);
        assert!(
            t.contains(r#"name="usage_requests",consumer="b\"ob\\\n"} 2"#),
            "{t}"
        );
    }
}
