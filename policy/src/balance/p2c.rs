//! Power of two choices (the default): two targets drawn at random in proportion to their
//! weights, the one with fewer requests in flight per weight wins. Near least-outstanding
//! balance at the cost of two draws, without herding every shard onto one idle target.

use super::{Balance, Candidates, Rng};

/// Draw state: the weights' running sums and the random source.
#[derive(Debug)]
pub struct P2c {
    /// `cumulative[i]` = weights of targets `0..=i`.
    cumulative: Box<[u64]>,
    rng: Rng,
}

/// Draws that may miss an ineligible target before the pick falls back to a scan.
const DRAWS: usize = 4;

impl P2c {
    /// Draws over `weights`, seeded with `seed`.
    pub fn new(weights: &[u32], seed: u64) -> P2c {
        P2c {
            cumulative: super::cumulative(weights),
            rng: Rng::new(seed),
        }
    }

    /// One eligible target drawn by weight, or `None` after `DRAWS` misses.
    fn draw(&self, c: &Candidates<'_>) -> Option<usize> {
        let total = *self.cumulative.last()?;
        for _ in 0..DRAWS {
            let r = self.rng.below(total);
            let i = super::by_weight(&self.cumulative, r);
            if c.eligible(i) {
                return Some(i);
            }
        }
        None
    }
}

impl Balance for P2c {
    fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        let n = c.targets.len().min(self.cumulative.len());
        if n == 0 {
            return None;
        }
        let Some(a) = self.draw(c) else {
            // most targets ineligible: the first eligible from a random place
            return c.scan_from(self.rng.below(n as u64) as usize);
        };
        match self.draw(c) {
            Some(b) if c.lighter(b, a) => Some(b),
            _ => Some(a),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::TargetState;
    use super::super::tests::{all, picked, targets};
    use super::*;

    #[test]
    fn prefers_the_lighter_of_two_and_follows_weights_when_idle() -> Result<(), String> {
        let t = targets(2);
        let b = P2c::new(&[1, 1], 3);
        t[0].in_flight.set(10);
        let c = all(&t, None);
        let to_light = (0..1000).filter(|_| b.pick(&c) == Some(1)).count();
        // target 1 wins unless both draws land on target 0 (a quarter of the time)
        assert!((650..=850).contains(&to_light), "{to_light}");

        let w: Vec<_> = [95, 5]
            .iter()
            .map(|&w| TargetState::new(w, false))
            .collect();
        let b = P2c::new(&[95, 5], 9);
        let c = all(&w, None);
        let mut hits = [0u32; 2];
        for _ in 0..10_000 {
            let i = picked(b.pick(&c))?;
            hits[i] += 1;
        }
        // idle targets: one request per weight is lighter on the heavy one, so the light
        // one wins only when both draws land on it (0.05² of the time)
        assert!(hits[0] >= 9_900 && hits[1] > 0, "{hits:?}");
        Ok(())
    }

    #[test]
    fn finds_the_one_eligible_target_among_many_down() {
        let t = targets(50);
        for x in &t[1..] {
            x.down.set(true);
        }
        let b = P2c::new(&[1; 50], 1);
        let c = all(&t, None);
        assert!((0..100).all(|_| b.pick(&c) == Some(0)));
    }
}
