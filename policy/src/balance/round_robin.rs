//! Round robin: each eligible target in turn (weights ignored). Each shard starts at its own
//! offset, so N shards do not send their first requests to the same target.

use std::cell::Cell;

use super::{Balance, Candidates};

/// The next position in the turn.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: Cell<usize>,
}

impl RoundRobin {
    /// A turn starting at `offset` (the shard's number).
    pub fn starting_at(offset: usize) -> RoundRobin {
        RoundRobin {
            next: Cell::new(offset),
        }
    }
}

impl Balance for RoundRobin {
    #[inline]
    fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        let n = c.targets.len();
        if n == 0 {
            return None;
        }
        let i = c.scan_from(self.next.get() % n)?;
        self.next.set(i.wrapping_add(1));
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{all, targets};
    use super::*;

    #[test]
    fn takes_turns_from_the_offset_and_steps_over_tried_and_down_targets() {
        let t = targets(3);
        let rr = RoundRobin::starting_at(1);
        let c = all(&t, None);
        let picks: Vec<_> = (0..4).map(|_| rr.pick(&c)).collect();
        assert_eq!(picks, [Some(1), Some(2), Some(0), Some(1)]);
        let tried = Candidates { tried: 0b100, ..c };
        assert_eq!(rr.pick(&tried), Some(0), "target 2 was tried");
        t[1].down.set(true);
        assert_eq!(rr.pick(&c), Some(2), "target 1 is down");
        assert_eq!(rr.pick(&all(&[], None)), None);
    }
}
