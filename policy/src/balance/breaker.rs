//! A circuit breaker per target: closed → open when the failure rate over a sliding window
//! passes a threshold (with a minimum of requests) → half-open after a cool-down, letting a
//! few trial requests through → closed when they all pass, open again when one fails. While
//! open the target takes no request at all: when every target is open the group fails fast.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Buckets of the sliding window.
const BUCKETS: usize = 10;

/// The settings (`[upstream.breaker]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConf {
    /// Length of the window the failure rate is measured over.
    pub window: Duration,
    /// Failure share (0.0 to 1.0) that opens the circuit.
    pub failure_rate: f64,
    /// Fewest requests in the window before it may open.
    pub min_requests: u32,
    /// Time open before trial requests go through.
    pub cool_down: Duration,
    /// Trial requests in half-open that must all pass to close.
    pub trials: u32,
}

/// Where a circuit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    /// Requests flow; results are counted.
    Closed,
    /// No request until then.
    Open {
        /// End of the cool-down.
        until: Instant,
    },
    /// Trial requests: `left` may still be sent, `passed` came back good.
    HalfOpen {
        /// Trials not sent yet.
        left: u32,
        /// Trials that passed.
        passed: u32,
        /// When it went half-open (trials lost to cancelled requests are re-granted after a
        /// cool-down).
        since: Instant,
    },
}

/// What a result did to the circuit, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// It opened (again).
    Opened,
    /// It closed.
    Closed,
}

/// One target's breaker.
#[derive(Debug)]
pub struct Breaker {
    state: Cell<Circuit>,
    /// Per bucket: its number since `epoch`, requests, failures.
    buckets: [Cell<(u64, u32, u32)>; BUCKETS],
    epoch: Instant,
}

impl Breaker {
    /// A closed breaker whose window starts at `now`.
    pub fn new(now: Instant) -> Breaker {
        Breaker {
            state: Cell::new(Circuit::Closed),
            buckets: Default::default(),
            epoch: now,
        }
    }

    /// Its state.
    pub fn circuit(&self) -> Circuit {
        self.state.get()
    }

    /// Whether a request may be sent at `now` (no change made).
    #[inline]
    pub fn allows(&self, now: Instant, c: &BreakerConf) -> bool {
        match self.state.get() {
            Circuit::Closed => true,
            Circuit::Open { until } => now >= until,
            Circuit::HalfOpen { left, since, .. } => left > 0 || now >= since + c.cool_down,
        }
    }

    /// A request is about to be sent at `now`: true when it may go (closed, or a trial permit
    /// was taken); false when the circuit is open or its trials are all out. `allows` only
    /// looks; this is the one place a permit is taken, checked again at the moment of sending.
    pub fn try_acquire(&self, now: Instant, c: &BreakerConf) -> bool {
        let trials = c.trials.max(1);
        match self.state.get() {
            Circuit::Closed => true,
            Circuit::Open { until } if now < until => false,
            Circuit::Open { .. } => {
                self.state.set(Circuit::HalfOpen {
                    left: trials - 1,
                    passed: 0,
                    since: now,
                });
                true
            }
            Circuit::HalfOpen {
                left,
                passed,
                since,
            } => {
                if left > 0 {
                    self.state.set(Circuit::HalfOpen {
                        left: left - 1,
                        passed,
                        since,
                    });
                    true
                } else if now >= since + c.cool_down {
                    // the trials sent were never answered (cancelled): grant them again
                    self.state.set(Circuit::HalfOpen {
                        left: trials - 1,
                        passed: 0,
                        since: now,
                    });
                    true
                } else {
                    false
                }
            }
        }
    }

    /// A request sent through this breaker ended at `now`, `ok` or failed.
    pub fn record(&self, ok: bool, now: Instant, c: &BreakerConf) -> Option<Transition> {
        match self.state.get() {
            Circuit::Open { .. } => None,
            Circuit::HalfOpen {
                left,
                passed,
                since,
            } => {
                if !ok {
                    self.open(now, c);
                    return Some(Transition::Opened);
                }
                if passed + 1 >= c.trials.max(1) {
                    self.clear();
                    self.state.set(Circuit::Closed);
                    return Some(Transition::Closed);
                }
                self.state.set(Circuit::HalfOpen {
                    left,
                    passed: passed + 1,
                    since,
                });
                None
            }
            Circuit::Closed => {
                let (total, failed) = self.count(ok, now, c);
                let tripped = total >= c.min_requests.max(1)
                    && f64::from(failed) >= c.failure_rate * f64::from(total);
                if tripped {
                    self.open(now, c);
                    return Some(Transition::Opened);
                }
                None
            }
        }
    }

    fn open(&self, now: Instant, c: &BreakerConf) {
        self.clear();
        self.state.set(Circuit::Open {
            until: now + c.cool_down,
        });
    }

    fn clear(&self) {
        for b in &self.buckets {
            b.set((0, 0, 0));
        }
    }

    /// Adds a result to the window; the window's requests and failures.
    fn count(&self, ok: bool, now: Instant, c: &BreakerConf) -> (u32, u32) {
        let width = (c.window / BUCKETS as u32).max(Duration::from_millis(1));
        let n = (now.saturating_duration_since(self.epoch).as_nanos() / width.as_nanos()) as u64;
        // bucket numbers start at 1 so that an unused (zeroed) bucket is never current
        let n = n + 1;
        if let Some(b) = self.buckets.get((n % BUCKETS as u64) as usize) {
            let (stamp, total, failed) = b.get();
            let (total, failed) = if stamp == n { (total, failed) } else { (0, 0) };
            b.set((n, total + 1, failed + u32::from(!ok)));
        }
        let oldest = n.saturating_sub(BUCKETS as u64 - 1);
        self.buckets
            .iter()
            .map(Cell::get)
            .filter(|&(stamp, _, _)| stamp >= oldest && stamp <= n)
            .fold((0, 0), |(t, f), (_, bt, bf)| (t + bt, f + bf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn conf() -> BreakerConf {
        BreakerConf {
            window: 1000 * MS,
            failure_rate: 0.5,
            min_requests: 4,
            cool_down: 100 * MS,
            trials: 2,
        }
    }

    #[test]
    fn opens_on_the_failure_rate_and_recovers_through_half_open() {
        let c = conf();
        let t0 = Instant::now();
        let b = Breaker::new(t0);
        assert_eq!(b.record(false, t0, &c), None, "under the minimum");
        assert_eq!(b.record(true, t0, &c), None);
        assert_eq!(b.record(true, t0, &c), None);
        assert_eq!(b.record(false, t0, &c), Some(Transition::Opened), "2 of 4");
        assert!(!b.allows(t0 + 99 * MS, &c));
        assert!(
            !b.try_acquire(t0 + 99 * MS, &c),
            "no permit before the cool-down"
        );
        let t1 = t0 + 100 * MS;
        assert!(b.allows(t1, &c));
        assert!(b.try_acquire(t1, &c));
        assert!(b.allows(t1, &c), "a second trial");
        assert!(b.try_acquire(t1, &c));
        assert!(!b.allows(t1, &c), "no third");
        assert!(!b.try_acquire(t1, &c));
        assert_eq!(b.record(true, t1, &c), None);
        assert_eq!(b.record(true, t1, &c), Some(Transition::Closed));
        assert_eq!(b.circuit(), Circuit::Closed);
        // a failed trial opens it again
        for _ in 0..4 {
            b.record(false, t1, &c);
        }
        let t2 = t1 + 100 * MS;
        assert!(b.try_acquire(t2, &c));
        assert_eq!(b.record(false, t2, &c), Some(Transition::Opened));
        assert!(!b.allows(t2 + 50 * MS, &c));
    }

    #[test]
    fn old_results_leave_the_window_and_lost_trials_are_granted_again() {
        let c = conf();
        let t0 = Instant::now();
        let b = Breaker::new(t0);
        for _ in 0..3 {
            b.record(false, t0, &c);
        }
        // the three failures are more than a window old: one more is 1 of 1, under the minimum
        assert_eq!(b.record(false, t0 + 2000 * MS, &c), None);
        for _ in 0..3 {
            b.record(false, t0 + 2000 * MS, &c);
        }
        assert!(!b.allows(t0 + 2000 * MS, &c), "4 of 4 in the window");
        let t1 = t0 + 2100 * MS;
        assert!(b.try_acquire(t1, &c) && b.try_acquire(t1, &c));
        assert!(!b.allows(t1 + 50 * MS, &c));
        assert!(
            !b.try_acquire(t1 + 50 * MS, &c),
            "no fresh trials before a cool-down"
        );
        // the two trials never came back: after a cool-down, trials again
        assert!(b.allows(t1 + 100 * MS, &c));
        assert!(b.try_acquire(t1 + 100 * MS, &c));
    }
}
