//! Round robin: each target in turn. Each shard starts at its own offset, so N shards do not
//! send their first requests to the same target.

use std::cell::Cell;

use super::{Balance, Candidates};
use crate::exchange::Exchange;

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
    fn pick(&self, c: &Candidates, _ex: &Exchange) -> Option<usize> {
        if c.count == 0 {
            return None;
        }
        let mut i = self.next.get() % c.count;
        if c.avoid == Some(i) && c.count > 1 {
            i = (i + 1) % c.count;
        }
        self.next.set(i.wrapping_add(1));
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_turns_from_the_offset_and_steps_over_the_avoided_target() {
        let ex = Exchange::default();
        let rr = RoundRobin::starting_at(1);
        let all = Candidates {
            count: 3,
            avoid: None,
        };
        let picks: Vec<_> = (0..4).map(|_| rr.pick(&all, &ex)).collect();
        assert_eq!(picks, [Some(1), Some(2), Some(0), Some(1)]);
        let avoid = Candidates {
            count: 3,
            avoid: Some(2),
        };
        assert_eq!(rr.pick(&avoid, &ex), Some(0));
        let one = Candidates {
            count: 1,
            avoid: Some(0),
        };
        assert_eq!(
            rr.pick(&one, &ex),
            Some(0),
            "the only target is still chosen"
        );
        let none = Candidates {
            count: 0,
            avoid: None,
        };
        assert_eq!(rr.pick(&none, &ex), None);
    }
}
