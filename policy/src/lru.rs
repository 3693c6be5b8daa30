//! A bounded map with least-recently-used eviction, for per-shard tables a flood of distinct
//! keys must not grow (rate-limit buckets, verified tokens): slots in one `Vec` linked in
//! recency order, an index from key to slot, O(1) get/insert/evict, no allocation once full.

use std::collections::HashMap;

const NIL: u32 = u32::MAX;

struct Slot<V> {
    key: u64,
    value: V,
    prev: u32,
    next: u32,
}

/// The map. Keys are 64-bit digests the caller computes (with a per-process random hasher, so
/// collisions cannot be aimed at).
pub struct Lru<V> {
    index: HashMap<u64, u32, ahash::RandomState>,
    slots: Vec<Slot<V>>,
    /// Most recently used.
    head: u32,
    /// Least recently used: evicted first.
    tail: u32,
    capacity: usize,
}

impl<V> Lru<V> {
    /// An empty map holding at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Lru<V> {
        let capacity = capacity.clamp(1, NIL as usize - 1);
        Lru {
            index: HashMap::with_capacity_and_hasher(capacity.min(4096), ahash::RandomState::new()),
            slots: Vec::with_capacity(capacity.min(4096)),
            head: NIL,
            tail: NIL,
            capacity,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The most entries it will hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The entry for `key`, marked most recently used.
    pub fn get(&mut self, key: u64) -> Option<&mut V> {
        let i = *self.index.get(&key)?;
        self.touch(i);
        self.slots.get_mut(i as usize).map(|s| &mut s.value)
    }

    /// The entry for `key`, created with `make` if absent (evicting the least recently used
    /// entry when full), marked most recently used. Always `Some`: the index only holds live
    /// slots (an `Option` instead of a panic on the request path).
    pub fn get_or_insert_with(&mut self, key: u64, make: impl FnOnce() -> V) -> Option<&mut V> {
        let i = match self.index.get(&key) {
            Some(&i) => {
                self.touch(i);
                i
            }
            None => self.insert_new(key, make()),
        };
        self.slots.get_mut(i as usize).map(|s| &mut s.value)
    }

    /// Sets `key`'s entry to `value` (evicting the least recently used entry when full).
    pub fn insert(&mut self, key: u64, value: V) {
        match self.index.get(&key) {
            Some(&i) => {
                self.touch(i);
                if let Some(s) = self.slots.get_mut(i as usize) {
                    s.value = value;
                }
            }
            None => {
                self.insert_new(key, value);
            }
        }
    }

    /// Removes `key`'s entry.
    pub fn remove(&mut self, key: u64) -> Option<V> {
        let i = self.index.remove(&key)?;
        self.unlink(i);
        // keep slots dense: move the last slot into the hole
        let last = (self.slots.len() - 1) as u32;
        if i != last {
            self.unlink(last);
            let moved_key = self.slots.get(last as usize)?.key;
            self.slots.swap(i as usize, last as usize);
            self.index.insert(moved_key, i);
            self.link_front(i);
        }
        self.slots.pop().map(|s| s.value)
    }

    fn insert_new(&mut self, key: u64, value: V) -> u32 {
        if self.slots.len() >= self.capacity && self.tail != NIL {
            // reuse the least recently used slot
            let i = self.tail;
            self.unlink(i);
            if let Some(s) = self.slots.get_mut(i as usize) {
                self.index.remove(&s.key);
                s.key = key;
                s.value = value;
            }
            self.index.insert(key, i);
            self.link_front(i);
            return i;
        }
        let i = self.slots.len() as u32;
        self.slots.push(Slot {
            key,
            value,
            prev: NIL,
            next: NIL,
        });
        self.index.insert(key, i);
        self.link_front(i);
        i
    }

    fn touch(&mut self, i: u32) {
        if self.head != i {
            self.unlink(i);
            self.link_front(i);
        }
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = match self.slots.get(i as usize) {
            Some(s) => (s.prev, s.next),
            None => return,
        };
        match self.slots.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.slots.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
        if let Some(s) = self.slots.get_mut(i as usize) {
            s.prev = NIL;
            s.next = NIL;
        }
    }

    fn link_front(&mut self, i: u32) {
        let old = self.head;
        if let Some(s) = self.slots.get_mut(i as usize) {
            s.prev = NIL;
            s.next = old;
        }
        match self.slots.get_mut(old as usize) {
            Some(h) => h.prev = i,
            None => self.tail = i,
        }
        self.head = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used() {
        let mut l: Lru<u32> = Lru::new(3);
        for k in 1..=3 {
            l.insert(k, k as u32);
        }
        assert_eq!(l.get(1), Some(&mut 1)); // 1 is now the most recent
        l.get_or_insert_with(4, || 4); // evicts 2
        assert_eq!(l.len(), 3);
        assert!(l.get(2).is_none());
        assert_eq!(l.get(3), Some(&mut 3));
        l.get_or_insert_with(5, || 5); // evicts 1 (3 was touched)
        assert!(l.get(1).is_none());
        assert_eq!(l.get(4), Some(&mut 4));
    }

    #[test]
    fn stays_bounded_under_a_flood_of_keys() {
        let mut l: Lru<u64> = Lru::new(1000);
        for k in 0..100_000u64 {
            if let Some(v) = l.get_or_insert_with(k, || 0) {
                *v += k;
            }
        }
        assert_eq!(l.len(), 1000);
        // the newest 1,000 remain
        assert_eq!(l.get(99_999), Some(&mut 99_999));
        assert!(l.get(98_999).is_none());
    }

    #[test]
    fn remove_keeps_the_rest_consistent() {
        let mut l: Lru<u64> = Lru::new(8);
        for k in 0..8 {
            l.get_or_insert_with(k, || k);
        }
        assert_eq!(l.remove(3), Some(3));
        assert_eq!(l.remove(3), None);
        assert_eq!(l.len(), 7);
        for k in (0..8).filter(|k| *k != 3) {
            assert_eq!(l.get(k), Some(&mut k.clone()), "{k}");
        }
        for k in 100..110 {
            l.get_or_insert_with(k, || k);
        }
        assert_eq!(l.len(), 8);
    }
}
