//! Least outstanding requests: the eligible target with the fewest requests in flight from
//! this shard, relative to its weight; ties go round robin, so an idle group still spreads.

use std::cell::Cell;

use super::{Balance, Candidates};

/// Where the next scan starts.
#[derive(Debug, Default)]
pub struct LeastOutstanding {
    next: Cell<usize>,
}

impl LeastOutstanding {
    /// Scans starting at `offset` (the shard's number).
    pub fn starting_at(offset: usize) -> LeastOutstanding {
        LeastOutstanding {
            next: Cell::new(offset),
        }
    }
}

impl Balance for LeastOutstanding {
    fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        let n = c.targets.len();
        if n == 0 {
            return None;
        }
        let start = self.next.get() % n;
        self.next.set(start.wrapping_add(1));
        let mut best = None;
        for k in 0..n {
            let i = (start + k) % n;
            if c.eligible(i) && best.is_none_or(|b| c.lighter(i, b)) {
                best = Some(i);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::super::TargetState;
    use super::super::tests::{all, picked, targets};
    use super::*;

    #[test]
    fn picks_the_least_loaded_per_weight() -> Result<(), String> {
        let t = targets(3);
        let b = LeastOutstanding::starting_at(0);
        let c = all(&t, None);
        t[0].in_flight.set(4);
        t[1].in_flight.set(1);
        t[2].in_flight.set(2);
        assert_eq!(b.pick(&c), Some(1));
        // weight 3 with 4 in flight ((4+1)/3) is lighter than weight 1 with 1 ((1+1)/1)
        let w = [TargetState::new(3, false), TargetState::new(1, false)];
        w[0].in_flight.set(4);
        w[1].in_flight.set(1);
        assert_eq!(b.pick(&all(&w, None)), Some(0));
        // ties rotate
        let idle = targets(3);
        let c = all(&idle, None);
        let picks = (0..3)
            .map(|_| picked(b.pick(&c)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut sorted = picks.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2], "{picks:?}");
        Ok(())
    }
}
