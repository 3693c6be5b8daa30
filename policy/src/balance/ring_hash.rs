//! Consistent hashing on a ring (Karger): each target owns points placed by a hash of its
//! name (as many as its weight asks), a key goes to the first point at or after its hash.
//! Removing one of N targets moves only that target's keys, about 1/N of them. Bounded load:
//! a target over its share of the requests in flight passes the key on along the ring.

use super::{Balance, Candidates, first_fit, hash_bytes, mix};

/// Points per unit of weight.
const POINTS_PER_WEIGHT: u64 = 160;
/// Most points on one ring (a large group gets fewer points per target).
const MAX_POINTS: u64 = 1 << 16;

/// The ring: `(point, target)`, sorted by point.
#[derive(Debug)]
pub struct RingHash {
    points: Box<[(u64, u32)]>,
    bound: f64,
    fallback: super::p2c::P2c,
}

impl RingHash {
    /// A ring over targets named `ids` with `weights`; `bound` is the load bound; a request
    /// without a key is balanced by p2c seeded with `seed`.
    pub fn new(ids: &[&[u8]], weights: &[u32], bound: f64, seed: u64) -> RingHash {
        let total: u64 = weights
            .iter()
            .map(|&w| u64::from(w.max(1)))
            .sum::<u64>()
            .max(1);
        // points in proportion to weight, at most MAX_POINTS in all (at least one a target)
        let budget = (total * POINTS_PER_WEIGHT).min(MAX_POINTS);
        let mut points = Vec::new();
        for (i, (id, &w)) in ids.iter().zip(weights).enumerate() {
            let base = hash_bytes(id);
            let count = (u64::from(w.max(1)) * budget / total).max(1);
            for k in 0..count {
                points.push((mix(base ^ mix(k)), i as u32));
            }
        }
        points.sort_unstable();
        RingHash {
            points: points.into(),
            bound,
            fallback: super::p2c::P2c::new(weights, seed),
        }
    }
}

impl Balance for RingHash {
    fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        let Some(key) = c.key else {
            return self.fallback.pick(c);
        };
        let n = self.points.len();
        let start = self.points.partition_point(|&(p, _)| p < key);
        let order =
            (0..n).filter_map(|k| self.points.get((start + k) % n).map(|&(_, t)| t as usize));
        first_fit(c, order, self.bound)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::hash_bytes;
    use super::super::tests::{all, picked, targets};
    use super::*;

    pub(crate) fn names(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("10.0.0.{i}:80").into_bytes())
            .collect()
    }

    /// Where each of 10,000 keys goes, by target name.
    fn placement(b: &impl Balance, ids: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, String> {
        let t = targets(ids.len());
        (0..10_000)
            .map(|k| {
                let key = hash_bytes(format!("user-{k}").as_bytes());
                Ok(ids[picked(b.pick(&all(&t, Some(key))))?].clone())
            })
            .collect()
    }

    /// Of 10,000 keys over five targets, how many move when the third is removed, and how
    /// many were on it; `build` makes the balancer from names and weights.
    pub(crate) fn moves_on_removal<B: Balance>(
        build: impl Fn(&[&[u8]], &[u32]) -> B,
    ) -> Result<(usize, usize), String> {
        let ids = names(5);
        let refs: Vec<&[u8]> = ids.iter().map(|v| v.as_slice()).collect();
        let before = placement(&build(&refs, &[1; 5]), &ids)?;
        let fewer: Vec<_> = ids.iter().filter(|i| **i != ids[2]).cloned().collect();
        let refs: Vec<&[u8]> = fewer.iter().map(|v| v.as_slice()).collect();
        let after = placement(&build(&refs, &[1; 4]), &fewer)?;
        let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        Ok((moved, before.iter().filter(|a| **a == ids[2]).count()))
    }

    #[test]
    fn removing_one_of_five_targets_moves_about_a_fifth_of_the_keys() -> Result<(), String> {
        let (moved, on_removed) = moves_on_removal(|ids, w| RingHash::new(ids, w, 100.0, 0))?;
        assert_eq!(moved, on_removed, "only the removed target's keys move");
        assert!((1_500..=2_600).contains(&moved), "{moved} of 10000 moved");
        Ok(())
    }

    #[test]
    fn a_hot_key_spills_over_the_bound_and_a_keyless_request_is_still_placed() -> Result<(), String>
    {
        let ids = names(4);
        let refs: Vec<&[u8]> = ids.iter().map(|v| v.as_slice()).collect();
        let b = RingHash::new(&refs, &[1; 4], 1.25, 0);
        let t = targets(4);
        let key = Some(hash_bytes(b"hot"));
        let home = picked(b.pick(&all(&t, key)))?;
        // the hot key's home already carries 2 while the others carry none: the bound of
        // its share (1.25 × 3/4, rounded up) is 1, so the key goes on to the next target
        t[home].in_flight.set(2);
        let spill = picked(b.pick(&all(&t, key)))?;
        assert_ne!(spill, home);
        t[home].in_flight.set(0);
        assert_eq!(
            b.pick(&all(&t, key)),
            Some(home),
            "back home once it is light"
        );
        // a down home: the next target on the ring, the same one every time
        t[home].down.set(true);
        let next = picked(b.pick(&all(&t, key)))?;
        assert_ne!(next, home);
        assert_eq!(b.pick(&all(&t, key)), Some(next));
        assert!(b.pick(&all(&t, None)).is_some());
        Ok(())
    }
}
