//! What a shard records per route and per upstream target for `/metrics` and `/stats`:
//! responses by method and status class, latency histograms (hdrhistogram, microseconds),
//! attempts, errors, connect times and pool reuse. Shard-local `Cell`s; a scrape copies them
//! by message (`Snapshot`), the admin thread merges the copies.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use hdrhistogram::Histogram;

/// Method labels, in the order of `method_index`.
pub const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
];

/// Status-class labels, in the order of `class_index`.
pub const CLASSES: [&str; 6] = ["none", "1xx", "2xx", "3xx", "4xx", "5xx"];

/// Longest latency told apart (one hour); longer ones count as one hour.
const MAX_MICROS: u64 = 3_600_000_000;

/// The row of `METHODS` for `m`.
pub fn method_index(m: proto::Method) -> usize {
    use proto::Method as M;
    match m {
        M::Get => 0,
        M::Head => 1,
        M::Post => 2,
        M::Put => 3,
        M::Patch => 4,
        M::Delete => 5,
        M::Options => 6,
        M::Trace | M::Connect | M::Other => 7,
    }
}

/// The column of `CLASSES` for `status` (0: nothing was sent).
pub fn class_index(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100),
        _ => 0,
    }
}

/// A latency distribution in microseconds, with the exact sum beside it.
#[derive(Debug, Clone)]
pub struct Latency {
    /// The recorded values, two significant digits (`None` only if hdrhistogram refused
    /// the constant bounds, which it does not).
    hist: Option<Histogram<u64>>,
    /// Their exact sum.
    sum_micros: u64,
}

impl Default for Latency {
    fn default() -> Latency {
        Latency {
            hist: Histogram::new_with_bounds(1, MAX_MICROS, 2).ok(),
            sum_micros: 0,
        }
    }
}

impl Latency {
    /// Records one duration.
    #[inline]
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        if let Some(h) = self.hist.as_mut() {
            h.saturating_record(us.max(1));
        }
        self.sum_micros = self.sum_micros.saturating_add(us);
    }

    /// Adds another distribution (another shard's) to this one.
    pub fn merge(&mut self, other: &Latency) {
        if let (Some(h), Some(o)) = (self.hist.as_mut(), other.hist.as_ref()) {
            // same bounds on both sides: cannot fail
            let _ = h.add(o);
        }
        self.sum_micros = self.sum_micros.saturating_add(other.sum_micros);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.hist.as_ref().map_or(0, Histogram::len)
    }

    /// Their sum in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_micros as f64 / 1e6
    }

    /// Values at or below `secs` seconds.
    pub fn count_le(&self, secs: f64) -> u64 {
        let us = (secs * 1e6) as u64;
        self.hist
            .as_ref()
            .map_or(0, |h| h.count_between(0, h.highest_equivalent(us)))
    }

    /// The value at quantile `q` (0..=1), in seconds (0 when empty).
    pub fn quantile(&self, q: f64) -> f64 {
        self.hist
            .as_ref()
            .filter(|h| !h.is_empty())
            .map_or(0.0, |h| h.value_at_quantile(q) as f64 / 1e6)
    }
}

/// One route's record on one shard (kept across a reload that keeps the route's name).
#[derive(Debug, Default)]
pub struct RouteStats {
    /// Finished exchanges by method (`METHODS`) and status class (`CLASSES`).
    pub responses: [[Cell<u64>; 6]; 8],
    /// From the request head's first byte read to the exchange's end.
    pub total: RefCell<Latency>,
    /// From the request sent upstream to the response head read.
    pub upstream: RefCell<Latency>,
}

impl RouteStats {
    /// Records a finished exchange.
    #[inline]
    pub fn finish(&self, ex: &policy::Exchange, total: Duration) {
        let cell = self
            .responses
            .get(method_index(ex.method))
            .and_then(|row| row.get(class_index(ex.status)));
        if let Some(c) = cell {
            c.set(c.get() + 1);
        }
        self.total.borrow_mut().record(total);
        if let (Some(sent), Some(head)) = (ex.upstream.sent_at, ex.upstream.head_at) {
            self.upstream
                .borrow_mut()
                .record(head.saturating_duration_since(sent));
        }
    }

    /// A copy, named `name`.
    pub fn snapshot(&self, name: &str) -> RouteSnapshot {
        RouteSnapshot {
            name: name.to_string(),
            responses: self
                .responses
                .each_ref()
                .map(|r| r.each_ref().map(Cell::get)),
            total: self.total.borrow().clone(),
            upstream: self.upstream.borrow().clone(),
        }
    }
}

/// One route's record at one moment (or merged over shards).
#[derive(Debug, Clone)]
pub struct RouteSnapshot {
    /// The route's name (`""`: requests that matched no route).
    pub name: String,
    /// Finished exchanges by method and status class.
    pub responses: [[u64; 6]; 8],
    /// Exchange durations.
    pub total: Latency,
    /// Upstream durations (to the response head).
    pub upstream: Latency,
}

impl RouteSnapshot {
    /// Adds another shard's record of the same route.
    pub fn merge(&mut self, other: &RouteSnapshot) {
        for (row, orow) in self.responses.iter_mut().zip(&other.responses) {
            for (n, o) in row.iter_mut().zip(orow) {
                *n += o;
            }
        }
        self.total.merge(&other.total);
        self.upstream.merge(&other.upstream);
    }

    /// Finished exchanges of every method with status class `class`.
    pub fn class_total(&self, class: usize) -> u64 {
        self.responses.iter().filter_map(|row| row.get(class)).sum()
    }
}

/// One upstream target's traffic from one shard (kept across a reload while the group keeps
/// the target).
#[derive(Debug, Default)]
pub struct TargetTraffic {
    /// Attempts sent (or tried to send) to it.
    pub attempts: Cell<u64>,
    /// Attempts that got no answer (connect failure, reset, timeout, malformed answer).
    pub errors: Cell<u64>,
    /// Attempts answered 5xx.
    pub server_errors: Cell<u64>,
    /// Attempts on a pooled (reused) connection.
    pub reused: Cell<u64>,
    /// New connections made.
    pub connects: Cell<u64>,
    /// Their summed connect time (TCP, and TLS where the group uses it), microseconds.
    pub connect_micros: Cell<u64>,
}

impl TargetTraffic {
    /// Counts an attempt (`reused`: on a pooled connection).
    #[inline]
    pub fn attempt(&self, reused: bool) {
        bump(&self.attempts);
        if reused {
            bump(&self.reused);
        }
    }

    /// Counts a new connection that took `d`.
    #[inline]
    pub fn connected(&self, d: Duration) {
        bump(&self.connects);
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.connect_micros
            .set(self.connect_micros.get().saturating_add(us));
    }

    /// Copies `old`'s counts into this (fresh) record.
    pub fn adopt(&self, old: &TargetTraffic) {
        for (n, o) in self.cells().into_iter().zip(old.cells()) {
            n.set(o.get());
        }
    }

    fn cells(&self) -> [&Cell<u64>; 6] {
        [
            &self.attempts,
            &self.errors,
            &self.server_errors,
            &self.reused,
            &self.connects,
            &self.connect_micros,
        ]
    }

    /// A copy.
    pub fn snapshot(&self) -> TrafficSnapshot {
        TrafficSnapshot {
            attempts: self.attempts.get(),
            errors: self.errors.get(),
            server_errors: self.server_errors.get(),
            reused: self.reused.get(),
            connects: self.connects.get(),
            connect_micros: self.connect_micros.get(),
        }
    }
}

/// A target's traffic at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficSnapshot {
    /// Attempts.
    pub attempts: u64,
    /// Attempts without an answer.
    pub errors: u64,
    /// Attempts answered 5xx.
    pub server_errors: u64,
    /// Attempts on a reused connection.
    pub reused: u64,
    /// New connections.
    pub connects: u64,
    /// Their summed connect time, microseconds.
    pub connect_micros: u64,
}

impl TrafficSnapshot {
    /// Adds another shard's traffic to the same target.
    pub fn add(&mut self, o: &TrafficSnapshot) {
        self.attempts += o.attempts;
        self.errors += o.errors;
        self.server_errors += o.server_errors;
        self.reused += o.reused;
        self.connects += o.connects;
        self.connect_micros += o.connect_micros;
    }
}

/// Adds one to `c`.
#[inline]
pub fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_counts_buckets_and_quantiles_and_merges() {
        let mut a = Latency::default();
        for ms in 1..=100u64 {
            a.record(Duration::from_millis(ms));
        }
        let mut b = Latency::default();
        b.record(Duration::from_secs(7200)); // beyond the bound: counted as one hour
        a.merge(&b);
        assert_eq!(a.count(), 101);
        assert_eq!(a.count_le(0.010), 10);
        assert_eq!(a.count_le(0.100), 100);
        assert_eq!(a.count_le(4000.0), 101);
        let p50 = a.quantile(0.5);
        assert!((0.050..=0.052).contains(&p50), "{p50}");
        assert!((a.sum_seconds() - (5.05 + 7200.0)).abs() < 1e-6);
        assert_eq!(Latency::default().quantile(0.99), 0.0);
    }

    #[test]
    fn classes_and_methods_have_their_own_cells() {
        assert_eq!(class_index(0), 0);
        assert_eq!(class_index(99), 0);
        assert_eq!(class_index(204), 2);
        assert_eq!(class_index(599), 5);
        assert_eq!(class_index(600), 0);
        assert_eq!(
            METHODS.get(method_index(proto::Method::Patch)),
            Some(&"PATCH")
        );
        assert_eq!(
            METHODS.get(method_index(proto::Method::Other)),
            Some(&"other")
        );
    }
}
