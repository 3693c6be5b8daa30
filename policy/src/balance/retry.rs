//! The retry budget and backoff. Each regular request earns `share` of a retry, each retry
//! spends one, so over any stretch retries add at most `share` on top of the requests, plus
//! what the bucket held: at most what the previous second's requests earned (so a burst of
//! failures as a busy target dies is covered) and at least a reserve of what 50 requests earn
//! (it starts with it, so a quiet gateway can still retry its first failures). Retries
//! cannot turn an outage into a storm.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// One shard's budget for one upstream group, in thousandths of a retry (exact sums).
#[derive(Debug)]
pub struct RetryBudget {
    share: u64,
    reserve: u64,
    balance: Cell<u64>,
    /// Requests in the current one-second window, in the one before, and when it began.
    window: Cell<(u64, u64, Option<Instant>)>,
}

/// A whole retry, in the budget's unit.
const ONE: u64 = 1000;

/// The window the bucket's size follows.
const WINDOW: Duration = Duration::from_secs(1);

impl RetryBudget {
    /// A budget of `share` retries per request (0.0 to 1.0), starting with its reserve.
    pub fn new(share: f64) -> RetryBudget {
        let share = if share.is_finite() {
            share.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let share = (share * ONE as f64).round() as u64;
        let reserve = if share > 0 { (share * 50).max(ONE) } else { 0 };
        RetryBudget {
            share,
            reserve,
            balance: Cell::new(reserve),
            window: Cell::new((0, 0, None)),
        }
    }

    /// A regular request (a first attempt) at `now` earns its share.
    #[inline]
    pub fn earn(&self, now: Instant) {
        let (mut this, mut last, start) = self.window.get();
        let start = match start {
            Some(s) if now.saturating_duration_since(s) < WINDOW => s,
            Some(s) if now.saturating_duration_since(s) < 2 * WINDOW => {
                (last, this) = (this, 0);
                s + WINDOW
            }
            _ => {
                (last, this) = (0, 0);
                now
            }
        };
        self.window.set((this + 1, last, Some(start)));
        let cap = (self.share * last).max(self.reserve);
        self.balance.set((self.balance.get() + self.share).min(cap));
    }

    /// Takes one retry from the budget; false when it cannot pay for one.
    pub fn spend(&self) -> bool {
        let b = self.balance.get();
        if b >= ONE {
            self.balance.set(b - ONE);
            true
        } else {
            false
        }
    }
}

/// The wait before retry number `n` (1-based): a random share (`rand`) of `base` × 2^(n-1),
/// capped at `max` (full jitter: retries of many requests do not come back in step).
pub fn backoff(base: Duration, max: Duration, n: u32, rand: u64) -> Duration {
    if base.is_zero() {
        return Duration::ZERO;
    }
    let ceiling = base
        .saturating_mul(1u32 << n.saturating_sub(1).min(16))
        .min(max);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(((u128::from(rand) * u128::from(nanos)) >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_stay_within_the_share_of_requests() {
        let now = Instant::now();
        let b = RetryBudget::new(0.2);
        let mut retries = 0;
        for _ in 0..1000 {
            b.earn(now);
            // every request fails and wants every retry it can get
            while b.spend() {
                retries += 1;
            }
        }
        // 200 earned (less the first share, which found the bucket full) and the reserve
        // of 10 it started with
        assert_eq!(retries, 209);
        let none = RetryBudget::new(0.0);
        none.earn(now);
        assert!(!none.spend());
        // a quiet second banks no more than its reserve
        let b = RetryBudget::new(0.2);
        for _ in 0..10 {
            b.earn(now);
        }
        assert_eq!((0..100).filter(|_| b.spend()).count(), 10);
    }

    #[test]
    fn a_busy_second_covers_a_burst_the_next_one() {
        let t0 = Instant::now();
        let b = RetryBudget::new(0.2);
        // two busy seconds, none failing: 10,000 requests each
        for _ in 0..10_000 {
            b.earn(t0);
        }
        let t1 = t0 + Duration::from_millis(1500);
        for _ in 0..10_000 {
            b.earn(t1);
        }
        // the bucket may hold what the previous second earned (2,000 retries), so a burst
        // of failures as a target dies (hundreds at once) is retried
        assert!((0..1500).all(|_| b.spend()));
        // after a quiet stretch: back to the reserve
        b.earn(t1 + Duration::from_secs(5));
        assert_eq!((0..1000).filter(|_| b.spend()).count(), 10);
    }

    #[test]
    fn backoff_doubles_under_the_cap_with_jitter() {
        let ms = Duration::from_millis;
        assert_eq!(backoff(ms(0), ms(100), 3, u64::MAX), Duration::ZERO);
        let top = u64::MAX;
        assert!(backoff(ms(10), ms(100), 1, top) <= ms(10));
        assert!(backoff(ms(10), ms(100), 3, top) > ms(39));
        assert!(backoff(ms(10), ms(100), 9, top) <= ms(100));
        assert_eq!(backoff(ms(10), ms(100), 2, 0), Duration::ZERO);
    }
}
