//! How an upstream group picks a target for a request: one algorithm per file in this folder
//! and one variant of `Balancer`; per-target state (`TargetState`: load, health, ejection)
//! that the algorithms read; passive health (`outlier`), the retry budget (`retry`), the
//! active-check verdicts (`health`) and the request keys hashing balancers use (`key`).
//! Shard-local state; time, randomness and inputs are passed in.

pub mod breaker;
pub mod health;
pub mod ip_hash;
pub mod key;
pub mod least_outstanding;
pub mod maglev;
pub mod outlier;
pub mod p2c;
pub mod retry;
pub mod ring_hash;
pub mod round_robin;
pub mod weighted_round_robin;

use std::cell::Cell;
use std::time::Instant;

/// What one shard knows of one target: load, health verdict, ejection. Shard-local.
#[derive(Debug)]
pub struct TargetState {
    /// Share of traffic relative to the group's others (≥ 1).
    pub weight: u32,
    /// Requests on their way to it or being answered by it, from this shard.
    pub in_flight: Cell<u32>,
    /// Marked down by the active health checks.
    pub down: Cell<bool>,
    /// Ejected by outlier detection until then (kept after it passed: `outlier` reads it).
    pub ejected_until: Cell<Option<Instant>>,
    /// Failures in a row (outlier detection).
    pub failures: Cell<u32>,
    /// Ejections since it last stayed healthy (each doubles the next one).
    pub ejections: Cell<u32>,
    /// Its circuit breaker, when the group has one.
    pub breaker: Option<(breaker::Breaker, breaker::BreakerConf)>,
}

impl TargetState {
    /// A target of `weight`, up unless `down`.
    pub fn new(weight: u32, down: bool) -> TargetState {
        TargetState {
            weight: weight.max(1),
            in_flight: Cell::new(0),
            down: Cell::new(down),
            ejected_until: Cell::new(None),
            failures: Cell::new(0),
            ejections: Cell::new(0),
            breaker: None,
        }
    }

    /// The same with a circuit breaker whose window starts at `now`.
    pub fn with_breaker(mut self, conf: breaker::BreakerConf, now: Instant) -> TargetState {
        self.breaker = Some((breaker::Breaker::new(now), conf));
        self
    }

    /// Its breaker lets a request through at `now` (always, without one).
    #[inline]
    pub fn closed(&self, now: Instant) -> bool {
        self.breaker.as_ref().is_none_or(|(b, c)| b.allows(now, c))
    }

    /// Ejected at `now`.
    #[inline]
    pub fn ejected(&self, now: Instant) -> bool {
        self.ejected_until.get().is_some_and(|t| now < t)
    }

    /// Neither down nor ejected at `now`.
    #[inline]
    pub fn usable(&self, now: Instant) -> bool {
        !self.down.get() && !self.ejected(now)
    }
}

/// How strictly a pick filters targets; `pick_target` widens step by step until one is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Usable and not tried yet by this request.
    Fresh,
    /// Usable (a retry may go back to a tried one when no other is left).
    Usable,
    /// Any target: every one is down or ejected, so all share the load (panic mode). A
    /// target whose circuit is open is never chosen, at any level.
    Any,
}

/// What a balancer chooses among.
#[derive(Debug, Clone, Copy)]
pub struct Candidates<'a> {
    /// The group's targets.
    pub targets: &'a [TargetState],
    /// The time of the request.
    pub now: Instant,
    /// Targets this request already tried (bit i: target i; targets past 63 are not tracked).
    pub tried: u64,
    /// The filter.
    pub level: Level,
    /// The request's hash key, for the balancers that hash (`None`: the request has none).
    pub key: Option<u64>,
}

impl Candidates<'_> {
    /// Whether target `i` may be chosen at this level.
    #[inline]
    pub fn eligible(&self, i: usize) -> bool {
        let Some(t) = self.targets.get(i) else {
            return false;
        };
        let level = match self.level {
            Level::Fresh => t.usable(self.now) && (i >= 64 || self.tried & (1 << i) == 0),
            Level::Usable => t.usable(self.now),
            Level::Any => true,
        };
        level && t.closed(self.now)
    }

    /// The eligible targets' in-flight requests and weights, summed.
    pub fn load(&self) -> (u64, u64) {
        let (mut flight, mut weight) = (0u64, 0u64);
        for (i, t) in self.targets.iter().enumerate() {
            if self.eligible(i) {
                flight += u64::from(t.in_flight.get());
                weight += u64::from(t.weight);
            }
        }
        (flight, weight)
    }

    /// The first eligible target from `start` on, wrapping.
    pub fn scan_from(&self, start: usize) -> Option<usize> {
        let n = self.targets.len();
        (0..n).map(|k| (start + k) % n).find(|&i| self.eligible(i))
    }

    /// True when `a` is less loaded than `b` relative to their weights (in flight + 1 over
    /// weight, compared without division).
    #[inline]
    pub fn lighter(&self, a: usize, b: usize) -> bool {
        match (self.targets.get(a), self.targets.get(b)) {
            (Some(x), Some(y)) => {
                let lx = u64::from(x.in_flight.get()) + 1;
                let ly = u64::from(y.in_flight.get()) + 1;
                lx * u64::from(y.weight) < ly * u64::from(x.weight)
            }
            _ => false,
        }
    }
}

/// A target-choosing algorithm.
pub trait Balance {
    /// An eligible target for this request, `None` when there is none at this level.
    fn pick(&self, c: &Candidates<'_>) -> Option<usize>;
}

/// Which algorithm, with what it is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Each target in turn.
    RoundRobin,
    /// Smooth weighted round robin.
    WeightedRoundRobin,
    /// Fewest in flight per weight.
    LeastOutstanding,
    /// Power of two choices.
    P2c,
    /// Hash ring.
    RingHash,
    /// Maglev table.
    Maglev,
    /// Hash of the client address.
    IpHash,
}

/// Every algorithm, statically dispatched.
pub enum Balancer {
    /// `round_robin`.
    RoundRobin(round_robin::RoundRobin),
    /// `weighted_round_robin`.
    WeightedRoundRobin(weighted_round_robin::WeightedRoundRobin),
    /// `least_outstanding`.
    LeastOutstanding(least_outstanding::LeastOutstanding),
    /// `p2c`.
    P2c(p2c::P2c),
    /// `ring_hash`.
    RingHash(ring_hash::RingHash),
    /// `maglev`.
    Maglev(maglev::Maglev),
    /// `ip_hash`.
    IpHash(ip_hash::IpHash),
}

impl Balancer {
    /// A balancer of `kind` over targets named `ids` (stable identities: the hashing
    /// balancers place a target by its name, so removing one moves only its keys) with
    /// `weights`; `seed` varies the start per shard; `bound` is the hashing balancers'
    /// load bound.
    pub fn new(kind: Kind, ids: &[&[u8]], weights: &[u32], seed: u64, bound: f64) -> Balancer {
        match kind {
            Kind::RoundRobin => {
                Balancer::RoundRobin(round_robin::RoundRobin::starting_at(seed as usize))
            }
            Kind::WeightedRoundRobin => Balancer::WeightedRoundRobin(
                weighted_round_robin::WeightedRoundRobin::new(weights.len()),
            ),
            Kind::LeastOutstanding => Balancer::LeastOutstanding(
                least_outstanding::LeastOutstanding::starting_at(seed as usize),
            ),
            Kind::P2c => Balancer::P2c(p2c::P2c::new(weights, seed)),
            Kind::RingHash => {
                Balancer::RingHash(ring_hash::RingHash::new(ids, weights, bound, seed))
            }
            Kind::Maglev => Balancer::Maglev(maglev::Maglev::new(ids, weights, bound, seed)),
            Kind::IpHash => Balancer::IpHash(ip_hash::IpHash::new(weights)),
        }
    }
}

impl Balance for Balancer {
    #[inline]
    fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        match self {
            Balancer::RoundRobin(b) => b.pick(c),
            Balancer::WeightedRoundRobin(b) => b.pick(c),
            Balancer::LeastOutstanding(b) => b.pick(c),
            Balancer::P2c(b) => b.pick(c),
            Balancer::RingHash(b) => b.pick(c),
            Balancer::Maglev(b) => b.pick(c),
            Balancer::IpHash(b) => b.pick(c),
        }
    }
}

/// Picks with `b`, widening the filter (fresh, then usable, then any) until a target is
/// found; `None` for an empty group or when every target's circuit is open.
pub fn pick_target(
    b: &impl Balance,
    targets: &[TargetState],
    now: Instant,
    tried: u64,
    key: Option<u64>,
) -> Option<usize> {
    [Level::Fresh, Level::Usable, Level::Any]
        .into_iter()
        .find_map(|level| {
            b.pick(&Candidates {
                targets,
                now,
                tried,
                level,
                key,
            })
        })
}

/// A 64-bit hash of `bytes` that is the same in every process and build (FNV-1a, then a
/// finaliser that spreads every input bit): shards and gateways must agree on a key's target.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// splitmix64's finaliser.
#[inline]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small shard-local random source (xorshift64*), seeded explicitly so tests repeat.
#[derive(Debug)]
pub struct Rng(Cell<u64>);

impl Rng {
    /// A source seeded with `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Rng {
        Rng(Cell::new(mix(seed.wrapping_add(0x9e37_79b9_7f4a_7c15)) | 1))
    }

    /// The next value.
    #[inline]
    pub fn next(&self) -> u64 {
        let mut x = self.0.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n` (`n` > 0), without modulo bias worth measuring for small `n`.
    #[inline]
    pub fn below(&self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// The weights' running sums (each weight counted as at least 1).
pub(crate) fn cumulative(weights: &[u32]) -> Box<[u64]> {
    let mut sum = 0u64;
    weights
        .iter()
        .map(|&w| {
            sum += u64::from(w.max(1));
            sum
        })
        .collect()
}

/// The target whose stretch of the running sums holds `r` (below the total).
#[inline]
pub(crate) fn by_weight(cumulative: &[u64], r: u64) -> usize {
    cumulative.partition_point(|&s| s <= r)
}

/// The first target along `order` that is eligible and under the load bound; if every one
/// seen is over it, the first eligible one; `None` when no target is eligible at all.
pub(crate) fn first_fit(
    c: &Candidates<'_>,
    order: impl Iterator<Item = usize>,
    bound: f64,
) -> Option<usize> {
    let load = c.load();
    if load.1 == 0 {
        return None;
    }
    let mut first = None;
    for t in order {
        if !c.eligible(t) {
            continue;
        }
        if under_bound(c, t, bound, load) {
            return Some(t);
        }
        first.get_or_insert(t);
    }
    first
}

/// Whether target `i` may take one more request under the hashing balancers' bounded load:
/// at most `bound` × its weight's share of the eligible targets' requests in flight (this
/// one included), rounded up.
pub fn under_bound(c: &Candidates<'_>, i: usize, bound: f64, load: (u64, u64)) -> bool {
    let Some(t) = c.targets.get(i) else {
        return false;
    };
    let (flight, weight) = load;
    if weight == 0 {
        return true;
    }
    let share = (flight + 1) as f64 * f64::from(t.weight) / weight as f64;
    f64::from(t.in_flight.get()) + 1.0 <= (share * bound).ceil()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `n` up targets of weight 1.
    pub fn targets(n: usize) -> Vec<TargetState> {
        (0..n).map(|_| TargetState::new(1, false)).collect()
    }

    /// The target picked, or the test's failure.
    pub fn picked(p: Option<usize>) -> Result<usize, String> {
        p.ok_or_else(|| "no target picked".to_string())
    }

    pub fn all(t: &[TargetState], key: Option<u64>) -> Candidates<'_> {
        Candidates {
            targets: t,
            now: Instant::now(),
            tried: 0,
            level: Level::Fresh,
            key,
        }
    }

    #[test]
    fn the_filter_widens_until_a_target_is_found() {
        let t = targets(3);
        let rr = round_robin::RoundRobin::starting_at(0);
        let now = Instant::now();
        t[0].down.set(true);
        t[1].ejected_until
            .set(Some(now + std::time::Duration::from_secs(1)));
        // target 2 is the only usable one, even when tried
        assert_eq!(pick_target(&rr, &t, now, 0b100, None), Some(2));
        t[2].down.set(true);
        // none usable: any target (panic mode)
        assert!(pick_target(&rr, &t, now, 0, None).is_some());
        assert_eq!(pick_target(&rr, &[], now, 0, None), None);
        // an ejection that passed does not count
        assert!(!t[1].ejected(now + std::time::Duration::from_secs(2)));
    }

    #[test]
    fn the_hash_is_stable_and_spreads() {
        // fixed values: the hash must not change between builds (gateways must agree)
        assert_eq!(hash_bytes(b""), mix(0xcbf2_9ce4_8422_2325));
        assert_ne!(hash_bytes(b"a"), hash_bytes(b"b"));
        let rng = Rng::new(7);
        let mut hist = [0u32; 4];
        for _ in 0..4000 {
            hist[rng.below(4) as usize] += 1;
        }
        assert!(hist.iter().all(|&h| (900..1100).contains(&h)), "{hist:?}");
    }

    #[test]
    fn the_load_bound_caps_a_target_at_its_share() {
        let t = targets(4);
        let c = all(&t, None);
        // nothing in flight: anyone may take one
        assert!(under_bound(&c, 0, 1.25, c.load()));
        // target 0 carries 3 of 4 in flight: its share of 5 is 1.25, bound 1.25 → 2
        t[0].in_flight.set(3);
        t[1].in_flight.set(1);
        assert!(!under_bound(&c, 0, 1.25, c.load()));
        assert!(under_bound(&c, 2, 1.25, c.load()));
    }
}
