//! Active health verdicts: a target changes state only after a run of checks agreeing
//! (`healthy_threshold` passes to come up, `unhealthy_threshold` failures to go down).

/// One target's check history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdicts {
    up: bool,
    run: u32,
    healthy: u32,
    unhealthy: u32,
}

impl Verdicts {
    /// A target that starts `up` (or probing), with the two thresholds (each ≥ 1).
    pub fn new(up: bool, healthy: u32, unhealthy: u32) -> Verdicts {
        Verdicts {
            up,
            run: 0,
            healthy: healthy.max(1),
            unhealthy: unhealthy.max(1),
        }
    }

    /// The current verdict.
    pub fn up(&self) -> bool {
        self.up
    }

    /// Records a check; the new verdict when it changed.
    pub fn record(&mut self, passed: bool) -> Option<bool> {
        if passed == self.up {
            self.run = 0;
            return None;
        }
        self.run += 1;
        let needed = if passed { self.healthy } else { self.unhealthy };
        if self.run < needed {
            return None;
        }
        self.up = passed;
        self.run = 0;
        Some(passed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_changes_after_a_run_of_agreeing_checks() {
        let mut v = Verdicts::new(true, 2, 3);
        assert_eq!(v.record(false), None);
        assert_eq!(v.record(false), None);
        assert_eq!(v.record(true), None, "a pass breaks the run");
        assert_eq!(v.record(false), None);
        assert_eq!(v.record(false), None);
        assert_eq!(v.record(false), Some(false));
        assert!(!v.up());
        assert_eq!(v.record(true), None);
        assert_eq!(v.record(true), Some(true));
        let mut probing = Verdicts::new(false, 1, 1);
        assert_eq!(probing.record(false), None);
        assert_eq!(probing.record(true), Some(true));
    }
}
