//! Smooth weighted round robin (nginx's): every pick, each eligible target gains its weight;
//! the richest is chosen and pays the total. Weights 5:1:1 give a a b a c a a, not a a a a a b c.

use std::cell::Cell;

use super::{Balance, Candidates};

/// Each target's current credit.
#[derive(Debug)]
pub struct WeightedRoundRobin {
    current: Box<[Cell<i64>]>,
}

impl WeightedRoundRobin {
    /// Credits for `n` targets.
    pub fn new(n: usize) -> WeightedRoundRobin {
        WeightedRoundRobin {
            current: (0..n).map(|_| Cell::new(0)).collect(),
        }
    }
}

impl Balance for WeightedRoundRobin {
    fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        let mut best: Option<(usize, i64)> = None;
        let mut total = 0i64;
        for (i, (t, cur)) in c.targets.iter().zip(self.current.iter()).enumerate() {
            if !c.eligible(i) {
                continue;
            }
            let w = i64::from(t.weight);
            let v = cur.get() + w;
            cur.set(v);
            total += w;
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((i, v));
            }
        }
        let (i, v) = best?;
        if let Some(cur) = self.current.get(i) {
            cur.set(v - total);
        }
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::super::TargetState;
    use super::super::tests::{all, picked};
    use super::*;

    #[test]
    fn spreads_picks_evenly_within_the_weights() -> Result<(), String> {
        let t: Vec<_> = [5, 1, 1]
            .iter()
            .map(|&w| TargetState::new(w, false))
            .collect();
        let b = WeightedRoundRobin::new(3);
        let c = all(&t, None);
        let seq = (0..7)
            .map(|_| picked(b.pick(&c)))
            .collect::<Result<Vec<_>, _>>()?;
        assert_eq!(seq, [0, 0, 1, 0, 2, 0, 0]);
        Ok(())
    }

    #[test]
    fn ten_thousand_requests_land_within_two_percent_of_the_weights() -> Result<(), String> {
        let weights = [95, 5];
        let t: Vec<_> = weights
            .iter()
            .map(|&w| TargetState::new(w, false))
            .collect();
        let b = WeightedRoundRobin::new(2);
        let c = all(&t, None);
        let mut hits = [0u32; 2];
        for _ in 0..10_000 {
            hits[picked(b.pick(&c))?] += 1;
        }
        assert!((9_300..=9_700).contains(&hits[0]), "{hits:?}");
        // a down target's share goes to the others, and it picks up again when back
        t[0].down.set(true);
        assert!((0..10).all(|_| b.pick(&c) == Some(1)));
        t[0].down.set(false);
        assert_eq!(b.pick(&c), Some(0));
        Ok(())
    }
}
