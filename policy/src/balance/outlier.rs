//! Passive health (outlier detection): failures in a row of real requests to a target eject
//! it for a time that doubles with each repeated ejection (capped), never more than a share
//! of the group at once. A target that stays healthy as long as its last ejection lasted
//! starts again from the base time.

use std::time::{Duration, Instant};

use super::TargetState;

/// The settings (`[upstream.outlier]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outlier {
    /// Failures in a row that eject (0: never).
    pub consecutive: u32,
    /// First ejection's length.
    pub base: Duration,
    /// Longest ejection.
    pub max: Duration,
    /// Most of the group ejected at once, in percent.
    pub max_percent: u8,
}

/// What a reported result did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing to tell.
    None,
    /// The target was ejected for this long.
    Ejected(Duration),
}

impl Outlier {
    /// The length of ejection number `n` (1-based).
    fn length(&self, n: u32) -> Duration {
        let factor = 1u32 << n.saturating_sub(1).min(20);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// A request to `targets[i]` succeeded at `now`.
    pub fn success(&self, targets: &[TargetState], i: usize, now: Instant) {
        let Some(t) = targets.get(i) else {
            return;
        };
        t.failures.set(0);
        let n = t.ejections.get();
        if n > 0
            && let Some(until) = t.ejected_until.get()
            && now >= until + self.length(n)
        {
            t.ejections.set(0);
        }
    }

    /// A request to `targets[i]` failed at `now` (connect failure, reset, timeout, or a 5xx
    /// when those count).
    pub fn failure(&self, targets: &[TargetState], i: usize, now: Instant) -> Change {
        let Some(t) = targets.get(i) else {
            return Change::None;
        };
        if self.consecutive == 0 || t.ejected(now) {
            return Change::None;
        }
        let failures = t.failures.get().saturating_add(1);
        t.failures.set(failures);
        if failures < self.consecutive {
            return Change::None;
        }
        let ejected = targets.iter().filter(|x| x.ejected(now)).count();
        if (ejected + 1) * 100 > targets.len() * usize::from(self.max_percent) {
            // the group cannot spare another target: keep counting, eject later
            return Change::None;
        }
        let n = t.ejections.get().saturating_add(1);
        let length = self.length(n);
        t.ejections.set(n);
        t.failures.set(0);
        t.ejected_until.set(Some(now + length));
        Change::Ejected(length)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::targets;
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn outlier() -> Outlier {
        Outlier {
            consecutive: 3,
            base: 10 * S,
            max: 25 * S,
            max_percent: 50,
        }
    }

    #[test]
    fn failures_in_a_row_eject_for_a_time_that_doubles_up_to_the_cap() {
        let o = outlier();
        let t = targets(4);
        let t0 = Instant::now();
        assert_eq!(o.failure(&t, 0, t0), Change::None);
        o.success(&t, 0, t0);
        assert_eq!(o.failure(&t, 0, t0), Change::None);
        assert_eq!(
            o.failure(&t, 0, t0),
            Change::None,
            "the success broke the run"
        );
        assert_eq!(o.failure(&t, 0, t0), Change::Ejected(10 * S));
        assert!(!t[0].usable(t0 + 9 * S) && t[0].usable(t0 + 10 * S));
        let t1 = t0 + 10 * S;
        for _ in 0..2 {
            o.failure(&t, 0, t1);
        }
        assert_eq!(o.failure(&t, 0, t1), Change::Ejected(20 * S));
        let t2 = t1 + 20 * S;
        for _ in 0..2 {
            o.failure(&t, 0, t2);
        }
        assert_eq!(o.failure(&t, 0, t2), Change::Ejected(25 * S), "capped");
        // healthy for as long as the last ejection: back to the base time
        let t3 = t2 + 25 * S;
        o.success(&t, 0, t3 + 25 * S);
        for _ in 0..2 {
            o.failure(&t, 0, t3 + 25 * S);
        }
        assert_eq!(o.failure(&t, 0, t3 + 25 * S), Change::Ejected(10 * S));
    }

    #[test]
    fn never_ejects_more_than_the_share_of_the_group() {
        let o = outlier();
        let t = targets(4);
        let now = Instant::now();
        for i in 0..4 {
            for _ in 0..3 {
                o.failure(&t, i, now);
            }
        }
        let ejected = t.iter().filter(|x| x.ejected(now)).count();
        assert_eq!(ejected, 2, "50 % of 4");
        let never = Outlier {
            consecutive: 0,
            ..o
        };
        let u = targets(1);
        assert!((0..10).all(|_| never.failure(&u, 0, now) == Change::None));
    }
}
