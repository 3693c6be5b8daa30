//! Call analytics on one shard (`[management]`): every finished exchange counted into its
//! minute per route, consumer and status class (count, errors, bytes, a latency histogram),
//! handed over whole when the management thread asks (`take`, by message). Bounded: past
//! `MAX_KEYS` keys between two hand-overs, exchanges are dropped and counted.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use ahash::AHashMap;
use policy::Exchange;

/// Upper bounds (milliseconds) of the latency buckets; one more bucket takes the rest.
pub const LATENCY_MS: [u64; 13] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000];

/// Buckets in a latency histogram.
pub const BUCKETS: usize = LATENCY_MS.len() + 1;

/// Most keys a shard holds between two hand-overs.
const MAX_KEYS: usize = 20_000;

/// What a set of exchanges added up to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sums {
    /// Exchanges.
    pub count: u64,
    /// Of those, answered 5xx or ended without an answer.
    pub errors: u64,
    /// Bytes read from clients.
    pub bytes_in: u64,
    /// Bytes written to clients.
    pub bytes_out: u64,
    /// Exchanges per latency bucket (`LATENCY_MS`).
    pub latency: [u64; BUCKETS],
}

impl Sums {
    /// Adds `o` to these.
    pub fn add(&mut self, o: &Sums) {
        self.count += o.count;
        self.errors += o.errors;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        for (a, b) in self.latency.iter_mut().zip(o.latency) {
            *a += b;
        }
    }

    /// The upper bound (milliseconds) of the bucket holding quantile `q` (0..=1); the last
    /// bound for the open bucket, 0 without exchanges.
    pub fn quantile_ms(&self, q: f64) -> u64 {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return LATENCY_MS.get(i).copied().unwrap_or(10_000);
            }
        }
        10_000
    }
}

/// One minute's figures for a route, consumer and status class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRow {
    /// The minute's start, in milliseconds since the Unix epoch.
    pub minute_ms: u64,
    /// The route's name (`""`: never routed).
    pub route: String,
    /// The consumer (`""`: anonymous).
    pub consumer: String,
    /// The status class: 1 to 5, 0 when nothing was sent.
    pub class: u8,
    /// What they added up to.
    pub sums: Sums,
}

type Key = (u64, Rc<str>, Rc<str>, u8);

/// A shard's figures since the last hand-over.
#[derive(Debug, Default)]
pub struct Tally {
    open: RefCell<AHashMap<Key, Sums>>,
    dropped: Cell<u64>,
    anonymous: Rc<str>,
    unrouted: Rc<str>,
}

impl Tally {
    /// Counts one finished exchange of `route` that took `took`.
    pub fn record(&self, route: Option<&Rc<str>>, ex: &Exchange, took: Duration) {
        let minute = ex
            .wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 60)
            * 60_000;
        let consumer = ex
            .identity
            .as_ref()
            .map_or(&self.anonymous, |i| &i.consumer);
        let class = (ex.status / 100).min(5) as u8;
        let key = (
            minute,
            route.unwrap_or(&self.unrouted).clone(),
            consumer.clone(),
            class,
        );
        let mut open = self.open.borrow_mut();
        if open.len() >= MAX_KEYS && !open.contains_key(&key) {
            self.dropped.set(self.dropped.get() + 1);
            return;
        }
        let s = open.entry(key).or_default();
        s.count += 1;
        s.errors += u64::from(class == 5 || class == 0);
        s.bytes_in += ex.bytes_in;
        s.bytes_out += ex.bytes_out;
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        let bucket = LATENCY_MS
            .iter()
            .position(|&b| ms < b)
            .unwrap_or(LATENCY_MS.len());
        if let Some(b) = s.latency.get_mut(bucket) {
            *b += 1;
        }
    }

    /// Everything counted since the last call, and how many exchanges were dropped.
    pub fn take(&self) -> (Vec<CallRow>, u64) {
        let open = std::mem::take(&mut *self.open.borrow_mut());
        let rows = open
            .into_iter()
            .map(|((minute_ms, route, consumer, class), sums)| CallRow {
                minute_ms,
                route: route.to_string(),
                consumer: consumer.to_string(),
                class,
                sums,
            })
            .collect();
        (rows, self.dropped.replace(0))
    }
}

impl Tally {
    /// Takes back what `take` handed over when nobody received it (the management thread
    /// stopped waiting): counted again at the next hand-over, nothing lost.
    pub fn put_back(&self, rows: Vec<CallRow>, dropped: u64) {
        let mut open = self.open.borrow_mut();
        for r in rows {
            let key = (
                r.minute_ms,
                Rc::from(r.route.as_str()),
                Rc::from(r.consumer.as_str()),
                r.class,
            );
            open.entry(key).or_default().add(&r.sums);
        }
        self.dropped.set(self.dropped.get() + dropped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Instant, SystemTime};

    fn ex(status: u16, consumer: Option<&str>, secs: u64) -> Exchange {
        let mut ex = Exchange::new(
            "127.0.0.1:1".parse().unwrap_or_else(|_| unreachable!()),
            Instant::now(),
            policy::RouteId(0),
            policy::Params::default(),
        );
        ex.wall = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        ex.status = status;
        ex.bytes_in = 10;
        ex.bytes_out = 100;
        ex.identity = consumer.map(|c| {
            Rc::new(policy::Identity {
                consumer: c.into(),
                scopes: Rc::from(Vec::new()),
                roles: Rc::from(Vec::new()),
                claims: Rc::from(Vec::new()),
            })
        });
        ex
    }

    #[test]
    fn exchanges_add_up_per_minute_route_consumer_and_class() {
        let t = Tally::default();
        let r: Rc<str> = "orders".into();
        for (status, who, secs, ms) in [
            (200, Some("a"), 60, 3),
            (201, Some("a"), 119, 700),
            (200, Some("a"), 120, 3),
            (503, Some("a"), 60, 3),
            (0, None, 60, 20_000),
        ] {
            t.record(Some(&r), &ex(status, who, secs), Duration::from_millis(ms));
        }
        t.record(None, &ex(404, None, 60), Duration::ZERO);
        let (mut rows, dropped) = t.take();
        assert_eq!(dropped, 0);
        rows.sort_by_key(|r| (r.minute_ms, r.route.clone(), r.consumer.clone(), r.class));
        let brief: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.minute_ms,
                    r.route.as_str(),
                    r.consumer.as_str(),
                    r.class,
                    r.sums.count,
                    r.sums.errors,
                )
            })
            .collect();
        assert_eq!(
            brief,
            [
                (60_000, "", "", 4, 1, 0),
                (60_000, "orders", "", 0, 1, 1),
                (60_000, "orders", "a", 2, 2, 0),
                (60_000, "orders", "a", 5, 1, 1),
                (120_000, "orders", "a", 2, 1, 0),
            ]
        );
        let two = &rows[2].sums;
        assert_eq!((two.bytes_in, two.bytes_out), (20, 200));
        assert_eq!(two.quantile_ms(0.5), 5);
        assert_eq!(two.quantile_ms(0.99), 1000);
        assert_eq!(
            rows[1].sums.quantile_ms(0.99),
            10_000,
            "past the last bound"
        );
        assert!(t.take().0.is_empty(), "handed over once");
        // put back when nobody took them: the next hand-over has them, added to what came since
        t.put_back(rows.clone(), 2);
        t.record(Some(&r), &ex(200, Some("a"), 60), Duration::from_millis(3));
        let (mut again, dropped) = t.take();
        again.sort_by_key(|r| (r.minute_ms, r.route.clone(), r.consumer.clone(), r.class));
        assert_eq!(
            (again.len(), again[2].sums.count, dropped),
            (rows.len(), 3, 2)
        );
    }

    #[test]
    fn keys_past_the_bound_are_dropped_and_counted() {
        let t = Tally::default();
        let r: Rc<str> = "r".into();
        for i in 0..(MAX_KEYS as u64 + 5) {
            t.record(Some(&r), &ex(200, Some(&i.to_string()), 0), Duration::ZERO);
        }
        // a key already held still counts
        t.record(Some(&r), &ex(200, Some("0"), 0), Duration::ZERO);
        let (rows, dropped) = t.take();
        assert_eq!((rows.len(), dropped), (MAX_KEYS, 5));
    }
}
