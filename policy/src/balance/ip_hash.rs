//! IP hash (nginx's): the client address hashed onto the targets in proportion to their
//! weights, so a client keeps its target while the group does not change; when its target
//! is not eligible the hash is stirred and drawn again.

use super::{Balance, Candidates, mix};

/// The weights' running sums.
#[derive(Debug)]
pub struct IpHash {
    cumulative: Box<[u64]>,
}

/// Re-draws before the pick falls back to a scan.
const REDRAWS: u64 = 8;

impl IpHash {
    /// A hash over `weights`.
    pub fn new(weights: &[u32]) -> IpHash {
        IpHash {
            cumulative: super::cumulative(weights),
        }
    }
}

impl Balance for IpHash {
    fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        let total = *self.cumulative.last()?;
        let key = c.key.unwrap_or(0);
        for k in 0..REDRAWS {
            let h = mix(key.wrapping_add(k));
            let i = super::by_weight(&self.cumulative, h % total);
            if c.eligible(i) {
                return Some(i);
            }
        }
        c.scan_from((key % c.targets.len().max(1) as u64) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::super::hash_bytes;
    use super::super::tests::{all, picked, targets};
    use super::*;

    #[test]
    fn a_client_keeps_its_target_and_clients_spread() -> Result<(), String> {
        let t = targets(4);
        let b = IpHash::new(&[1; 4]);
        let mut hits = [0u32; 4];
        for ip in 0..4000u32 {
            let key = Some(hash_bytes(&ip.to_be_bytes()));
            let first = picked(b.pick(&all(&t, key)))?;
            assert_eq!(b.pick(&all(&t, key)), Some(first));
            hits[first] += 1;
        }
        assert!(hits.iter().all(|&h| (850..1150).contains(&h)), "{hits:?}");
        let key = Some(hash_bytes(b"10.1.2.3"));
        let home = picked(b.pick(&all(&t, key)))?;
        t[home].down.set(true);
        let other = picked(b.pick(&all(&t, key)))?;
        assert_ne!(other, home);
        assert_eq!(
            b.pick(&all(&t, key)),
            Some(other),
            "the second choice is stable too"
        );
        Ok(())
    }
}
