//! What one generator run measured: a latency histogram (microseconds), counts by outcome, and
//! the window they cover; merged across connections and threads, rendered as a table or JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histogram holds: 10 minutes, in microseconds (larger values saturate).
const MAX_US: u64 = 600_000_000;

/// Failures and unwanted statuses, counted by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Errors {
    /// Connections that could not be opened.
    pub connect: u64,
    /// Requests without a complete response within the request timeout.
    pub timeout: u64,
    /// Connections reset or closed before the response ended.
    pub reset: u64,
    /// Responses that could not be parsed.
    pub protocol: u64,
    /// Complete responses whose status is not 2xx or 3xx, by status.
    pub status: BTreeMap<u16, u64>,
}

impl Errors {
    /// All failures and unwanted statuses.
    pub fn total(&self) -> u64 {
        self.connect + self.timeout + self.reset + self.protocol + self.status.values().sum::<u64>()
    }

    fn add(&mut self, o: &Errors) {
        self.connect += o.connect;
        self.timeout += o.timeout;
        self.reset += o.reset;
        self.protocol += o.protocol;
        for (s, n) in &o.status {
            *self.status.entry(*s).or_default() += n;
        }
    }
}

/// Measurements of one run (or of one connection, before merging).
#[derive(Debug, Clone)]
pub struct Report {
    /// Latency of every complete response in the window, in microseconds, measured from the
    /// request's scheduled send time (open loop) or actual send time (closed loop).
    pub latency_us: Histogram<u64>,
    /// Failures by kind.
    pub errors: Errors,
    /// Response body bytes received.
    pub body_bytes: u64,
    /// Length of the measured window.
    pub window: Duration,
}

impl Default for Report {
    fn default() -> Self {
        Report::new(Duration::ZERO)
    }
}

impl Report {
    /// An empty report for a window of `window`.
    pub fn new(window: Duration) -> Report {
        let latency_us = Histogram::new_with_bounds(1, MAX_US, 3)
            .or_else(|_| Histogram::new(3))
            .unwrap_or_else(|_| unreachable_histogram());
        Report {
            latency_us,
            errors: Errors::default(),
            body_bytes: 0,
            window,
        }
    }

    /// Records one complete response.
    pub fn record(&mut self, latency: Duration, status: u16, body_bytes: u64) {
        self.latency_us
            .saturating_record((latency.as_micros() as u64).clamp(1, MAX_US));
        self.body_bytes += body_bytes;
        if !(200..400).contains(&status) {
            *self.errors.status.entry(status).or_default() += 1;
        }
    }

    /// Adds another report's counts (same window).
    pub fn merge(&mut self, o: &Report) {
        // Both histograms share bounds, so adding cannot fail; a failure would only lose counts.
        let _ = self.latency_us.add(&o.latency_us);
        self.errors.add(&o.errors);
        self.body_bytes += o.body_bytes;
        self.window = self.window.max(o.window);
    }

    /// Complete responses in the window.
    pub fn responses(&self) -> u64 {
        self.latency_us.len()
    }

    /// Complete responses per second of window.
    pub fn rps(&self) -> f64 {
        self.responses() as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// Latency at quantile `q` (0..=1), in milliseconds.
    pub fn ms_at(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }

    /// The summary that goes to JSON and tables.
    pub fn summary(&self) -> Summary {
        Summary {
            responses: self.responses(),
            rps: self.rps(),
            window_s: self.window.as_secs_f64(),
            latency_ms: Percentiles::of(self),
            errors: self.errors.clone(),
            error_total: self.errors.total(),
            body_bytes: self.body_bytes,
        }
    }
}

/// Builds a histogram that cannot fail to build (1 µs .. 1 s, 1 significant figure), for the
/// impossible case where both regular constructions fail.
fn unreachable_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, 1_000_000, 1) {
        Ok(h) => h,
        Err(e) => unreachable!("a fixed, valid histogram configuration: {e:?}"),
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// 99.99th percentile.
    pub p99_99: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    fn of(r: &Report) -> Percentiles {
        Percentiles {
            p50: r.ms_at(0.5),
            p90: r.ms_at(0.9),
            p99: r.ms_at(0.99),
            p99_9: r.ms_at(0.999),
            p99_99: r.ms_at(0.9999),
            max: r.latency_us.max() as f64 / 1000.0,
        }
    }
}

/// A run's figures, as written to JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Complete responses in the window.
    pub responses: u64,
    /// Responses per second.
    pub rps: f64,
    /// Measured window in seconds (warm-up excluded).
    pub window_s: f64,
    /// Latency percentiles.
    pub latency_ms: Percentiles,
    /// Failures by kind.
    pub errors: Errors,
    /// Sum of the failures.
    pub error_total: u64,
    /// Response body bytes.
    pub body_bytes: u64,
}

impl Summary {
    /// The human table of one run.
    pub fn table(&self) -> String {
        let l = &self.latency_ms;
        let mut s = format!(
            "  responses {:>10}   {:>10.0} req/s over {:.1} s\n  latency ms  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  p99.99 {:.3}  max {:.3}\n",
            self.responses, self.rps, self.window_s, l.p50, l.p90, l.p99, l.p99_9, l.p99_99, l.max
        );
        let e = &self.errors;
        s += &format!(
            "  errors {:>6}   connect {}  timeout {}  reset {}  protocol {}",
            self.error_total, e.connect, e.timeout, e.reset, e.protocol
        );
        for (status, n) in &e.status {
            s += &format!("  {status}: {n}");
        }
        s.push('\n');
        s
    }
}
