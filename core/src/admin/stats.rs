//! `GET /stats`: every shard's counters as one JSON document — per shard, listener, route
//! (requests, rate, status classes, latency percentiles) and target (health, ejection,
//! circuit, load, attempts, errors, connects, reuse). Rates are over the time since the
//! previous look (at least a second apart).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::control::ShardCounters;
use crate::metrics::{merged_routes, merged_targets};
use crate::stats::{CLASSES, Latency};

/// Shortest window a rate is measured over.
const WINDOW: Duration = Duration::from_secs(1);

/// The totals seen at an earlier look, for rates.
#[derive(Debug, Default)]
pub struct Rates {
    base: Option<(Instant, HashMap<String, u64>)>,
}

impl Rates {
    /// The stats document for `shards` at `now`.
    pub fn stats(&mut self, shards: &[ShardCounters], now: Instant) -> Value {
        let mut totals = HashMap::new();
        let routes = merged_routes(shards);
        let all: u64 = shards.iter().map(|c| c.requests).sum();
        totals.insert("all".to_string(), all);
        for c in shards {
            totals.insert(format!("shard {}", c.shard), c.requests);
        }
        // every shard's listeners, by bound address, in the order first seen
        let mut listener_list: Vec<(SocketAddr, &str, u64)> = Vec::new();
        for &(addr, scheme, n) in shards.iter().flat_map(|c| &c.listeners) {
            match listener_list.iter_mut().find(|l| l.0 == addr) {
                Some(l) => l.2 += n,
                None => listener_list.push((addr, scheme, n)),
            }
        }
        for (addr, _, n) in &listener_list {
            totals.insert(format!("listener {addr}"), *n);
        }
        for r in &routes {
            totals.insert(format!("route {}", r.name), count(r));
        }
        let rate = self.rates(&totals, now);
        let per_sec = |k: &str| rate.as_ref().and_then(|r| r.get(k).copied());
        let shard_list: Vec<Value> = shards
            .iter()
            .map(|c| {
                json!({
                    "shard": c.shard,
                    "requests": c.requests,
                    "rate": per_sec(&format!("shard {}", c.shard)),
                    "open": c.open,
                    "accepted": c.accepted,
                    "over_limit": c.over_limit,
                    "h2": { "connections": c.h2[0], "refused": c.h2[1], "floods": c.h2[2] },
                    "responses": classes(&c.classes),
                })
            })
            .collect();
        let listeners: Vec<Value> = listener_list
            .iter()
            .map(|(addr, scheme, n)| {
                json!({
                    "address": addr.to_string(),
                    "scheme": scheme,
                    "accepted": n,
                    "rate": per_sec(&format!("listener {addr}")),
                })
            })
            .collect();
        let route_list: Vec<Value> = routes
            .iter()
            .map(|r| {
                let by_class: Vec<u64> = (0..CLASSES.len()).map(|i| r.class_total(i)).collect();
                json!({
                    "name": if r.name.is_empty() { "(unrouted)" } else { r.name.as_str() },
                    "requests": count(r),
                    "rate": per_sec(&format!("route {}", r.name)),
                    "responses": classes(&by_class),
                    "latency_ms": percentiles(&r.total),
                    "upstream_ms": percentiles(&r.upstream),
                })
            })
            .collect();
        let targets: Vec<Value> = merged_targets(shards)
            .iter()
            .map(|(t, down_on)| {
                let tr = &t.traffic;
                json!({
                    "upstream": t.upstream,
                    "target": t.addr.to_string(),
                    "up": *down_on == 0,
                    "down_on_shards": down_on,
                    "ejected": t.ejected,
                    "circuit": t.circuit,
                    "in_flight": t.in_flight,
                    "attempts": tr.attempts,
                    "errors": tr.errors,
                    "server_errors": tr.server_errors,
                    "reused": tr.reused,
                    "connects": tr.connects,
                    "connect_ms_avg": (tr.connects > 0)
                        .then(|| tr.connect_micros as f64 / tr.connects as f64 / 1000.0),
                })
            })
            .collect();
        let log: [u64; 3] = shards.iter().fold([0; 3], |mut a, c| {
            for (x, y) in a.iter_mut().zip(c.log_lines) {
                *x += y;
            }
            a
        });
        json!({
            "requests": all,
            "rate": per_sec("all"),
            "open": shards.iter().map(|c| c.open).sum::<u64>(),
            "shards": shard_list,
            "listeners": listeners,
            "routes": route_list,
            "targets": targets,
            "access_log": { "written": log[0], "dropped": log[1], "lost": log[2] },
        })
    }

    /// Per-second rates since the base look (`None` on the first look); the base moves on
    /// once it is a `WINDOW` old.
    fn rates(
        &mut self,
        totals: &HashMap<String, u64>,
        now: Instant,
    ) -> Option<HashMap<String, f64>> {
        let out = self.base.as_ref().and_then(|(then, old)| {
            let dt = now.saturating_duration_since(*then).as_secs_f64();
            (dt > 0.0).then(|| {
                totals
                    .iter()
                    .map(|(k, v)| {
                        let before = old.get(k).copied().unwrap_or(0);
                        (k.clone(), v.saturating_sub(before) as f64 / dt)
                    })
                    .collect()
            })
        });
        let stale = self
            .base
            .as_ref()
            .is_none_or(|(then, _)| now.saturating_duration_since(*then) >= WINDOW);
        if stale {
            self.base = Some((now, totals.clone()));
        }
        out
    }
}

/// Exchanges of a route that finished.
fn count(r: &crate::stats::RouteSnapshot) -> u64 {
    (0..CLASSES.len()).map(|i| r.class_total(i)).sum()
}

fn classes(v: &[u64]) -> Value {
    let m: serde_json::Map<String, Value> = CLASSES
        .iter()
        .zip(v)
        .map(|(k, n)| ((*k).to_string(), json!(n)))
        .collect();
    Value::Object(m)
}

fn percentiles(l: &Latency) -> Value {
    if l.count() == 0 {
        return Value::Null;
    }
    let ms = |q: f64| (l.quantile(q) * 1e6).round() / 1e3;
    json!({ "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "p999": ms(0.999) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_over_the_time_since_the_base_look() {
        let mut r = Rates::default();
        let t0 = Instant::now();
        let total = |n: u64| HashMap::from([("all".to_string(), n)]);
        assert_eq!(r.rates(&total(100), t0), None, "no rate on the first look");
        let at = |s: u64| t0 + Duration::from_secs(s);
        let rate = r
            .rates(&total(300), at(2))
            .and_then(|m| m.get("all").copied());
        assert_eq!(rate, Some(100.0));
        // the base moved to t0+2s: the next rate is over the last second only
        let rate = r
            .rates(&total(350), at(3))
            .and_then(|m| m.get("all").copied());
        assert_eq!(rate, Some(50.0));
    }
}
