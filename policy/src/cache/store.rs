//! A shard's cache store: values under 64-bit key digests, bounded by a byte budget that is
//! never exceeded, with one of two eviction policies — plain LRU, or S3-FIFO (a small FIFO
//! that new keys enter, a main FIFO for keys seen again, and a ghost list of keys recently
//! evicted from the small one; Yang et al., SOSP 2023), which keeps one-hit wonders from
//! flushing popular objects. `bench --bench cache_store` compares their hit ratios on a Zipf
//! workload.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// How entries are evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// Least recently used first.
    Lru,
    /// S3-FIFO.
    S3Fifo,
}

/// Which S3-FIFO queue an entry is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Small,
    Main,
}

struct Item<V> {
    value: V,
    size: u64,
    /// LRU: the tick of its last use. S3-FIFO: its generation in its queue.
    tick: u64,
    /// S3-FIFO: uses since it entered its queue (at most 3).
    freq: u8,
    queue: Queue,
}

/// The store.
pub struct Store<V> {
    eviction: Eviction,
    budget: u64,
    used: u64,
    items: HashMap<u64, Item<V>, ahash::RandomState>,
    tick: u64,
    /// LRU: keys by last use.
    order: BTreeMap<u64, u64>,
    /// S3-FIFO queues of (key, generation); entries whose generation moved on are skipped.
    small: VecDeque<(u64, u64)>,
    main: VecDeque<(u64, u64)>,
    small_bytes: u64,
    ghost: VecDeque<u64>,
    ghosts: HashSet<u64, ahash::RandomState>,
}

impl<V> Store<V> {
    /// An empty store holding at most `budget` bytes.
    pub fn new(eviction: Eviction, budget: u64) -> Store<V> {
        Store {
            eviction,
            budget,
            used: 0,
            items: HashMap::default(),
            tick: 0,
            order: BTreeMap::new(),
            small: VecDeque::new(),
            main: VecDeque::new(),
            small_bytes: 0,
            ghost: VecDeque::new(),
            ghosts: HashSet::default(),
        }
    }

    /// Bytes held.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The value under `key`, counted as a use.
    pub fn get(&mut self, key: u64) -> Option<&V> {
        let tick = self.next_tick();
        let item = self.items.get_mut(&key)?;
        match self.eviction {
            Eviction::Lru => {
                self.order.remove(&item.tick);
                item.tick = tick;
                self.order.insert(tick, key);
            }
            Eviction::S3Fifo => item.freq = (item.freq + 1).min(3),
        }
        Some(&item.value)
    }

    /// The value under `key`, not counted as a use.
    pub fn peek(&self, key: u64) -> Option<&V> {
        self.items.get(&key).map(|i| &i.value)
    }

    /// Stores `value` of `size` bytes under `key` (replacing what was there), evicting until
    /// it fits; false (nothing stored) when it is larger than the whole budget.
    pub fn insert(&mut self, key: u64, value: V, size: u64) -> bool {
        self.remove(key);
        if size > self.budget {
            return false;
        }
        while self.used + size > self.budget {
            if !self.evict_one() {
                return false;
            }
        }
        let tick = self.next_tick();
        let queue = if self.ghosts.remove(&key) {
            Queue::Main
        } else {
            Queue::Small
        };
        match self.eviction {
            Eviction::Lru => {
                self.order.insert(tick, key);
            }
            Eviction::S3Fifo => match queue {
                Queue::Small => {
                    self.small.push_back((key, tick));
                    self.small_bytes += size;
                }
                Queue::Main => self.main.push_back((key, tick)),
            },
        }
        self.used += size;
        self.items.insert(
            key,
            Item {
                value,
                size,
                tick,
                freq: 0,
                queue,
            },
        );
        true
    }

    /// Takes `key` out.
    pub fn remove(&mut self, key: u64) -> Option<V> {
        let item = self.items.remove(&key)?;
        self.used -= item.size;
        match (self.eviction, item.queue) {
            (Eviction::Lru, _) => {
                self.order.remove(&item.tick);
            }
            // its queue entry is skipped when it comes up
            (Eviction::S3Fifo, Queue::Small) => self.small_bytes -= item.size,
            (Eviction::S3Fifo, Queue::Main) => {}
        }
        Some(item.value)
    }

    /// Removes every entry `keep` says no to; how many.
    pub fn retain(&mut self, mut keep: impl FnMut(u64, &V) -> bool) -> usize {
        let gone: Vec<u64> = self
            .items
            .iter()
            .filter(|(k, i)| !keep(**k, &i.value))
            .map(|(k, _)| *k)
            .collect();
        for k in &gone {
            self.remove(*k);
        }
        gone.len()
    }

    /// Evicts one entry; false when there is none.
    fn evict_one(&mut self) -> bool {
        match self.eviction {
            Eviction::Lru => match self.order.pop_first() {
                Some((_, key)) => self.remove(key).is_some(),
                None => false,
            },
            Eviction::S3Fifo => {
                // the small queue is kept near a tenth of the budget
                let main_empty = self.used == self.small_bytes;
                let from_small = self.small_bytes > self.budget / 10 || main_empty;
                type Evict<V> = fn(&mut Store<V>) -> bool;
                let (first, then): (Evict<V>, Evict<V>) = if from_small {
                    (Store::evict_small, Store::evict_main)
                } else {
                    (Store::evict_main, Store::evict_small)
                };
                first(self) || then(self)
            }
        }
    }

    /// The live entry a queue slot names, if it is still that one.
    fn live(&self, key: u64, tick: u64, queue: Queue) -> bool {
        self.items
            .get(&key)
            .is_some_and(|i| i.tick == tick && i.queue == queue)
    }

    /// From the small queue: an entry used again moves to main, the first one not used goes
    /// (its key into the ghost list).
    fn evict_small(&mut self) -> bool {
        while let Some((key, tick)) = self.small.pop_front() {
            if !self.live(key, tick, Queue::Small) {
                continue;
            }
            let new_tick = self.next_tick();
            let Some(item) = self.items.get_mut(&key) else {
                continue;
            };
            if item.freq > 0 {
                item.queue = Queue::Main;
                item.freq = 0;
                item.tick = new_tick;
                self.small_bytes -= item.size;
                self.main.push_back((key, new_tick));
                continue;
            }
            self.remove(key);
            self.ghost.push_back(key);
            self.ghosts.insert(key);
            while self.ghost.len() > self.items.len().max(16) {
                if let Some(old) = self.ghost.pop_front() {
                    self.ghosts.remove(&old);
                }
            }
            return true;
        }
        false
    }

    /// From the main queue: an entry used since it was last passed gets another round (one
    /// use fewer), the first one not used goes.
    fn evict_main(&mut self) -> bool {
        while let Some((key, tick)) = self.main.pop_front() {
            if !self.live(key, tick, Queue::Main) {
                continue;
            }
            let new_tick = self.next_tick();
            let Some(item) = self.items.get_mut(&key) else {
                continue;
            };
            if item.freq > 0 {
                item.freq -= 1;
                item.tick = new_tick;
                self.main.push_back((key, new_tick));
                continue;
            }
            self.remove(key);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_never_exceeded_whatever_is_inserted() {
        for eviction in [Eviction::Lru, Eviction::S3Fifo] {
            let mut s = Store::new(eviction, 10_000);
            let mut x = 7u64;
            // ten times the budget, in sizes from 1 byte to more than the whole budget
            let mut inserted = 0u64;
            while inserted < 100_000 {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let size = (x >> 33) % 1_500 + 1;
                let key = (x >> 20) % 300;
                s.insert(key, key, size);
                inserted += size;
                assert!(s.used() <= 10_000, "{eviction:?}: {} bytes", s.used());
                let _ = s.get((x >> 40) % 300);
            }
            assert!(!s.insert(1, 1, 10_001), "larger than the budget");
            assert!(s.len() > 1);
            let held: u64 = (0..300).filter_map(|k| s.peek(k).map(|_| k)).count() as u64;
            assert_eq!(held as usize, s.len());
        }
    }

    #[test]
    fn lru_evicts_the_least_recently_used() {
        let mut s = Store::new(Eviction::Lru, 3);
        for k in 1..=3 {
            s.insert(k, k, 1);
        }
        assert_eq!(s.get(1), Some(&1));
        s.insert(4, 4, 1);
        assert_eq!(s.peek(2), None, "2 was the least recently used");
        assert!(s.peek(1).is_some() && s.peek(3).is_some() && s.peek(4).is_some());
    }

    #[test]
    fn s3fifo_keeps_a_popular_key_through_a_scan() {
        let mut s = Store::new(Eviction::S3Fifo, 100);
        s.insert(0, 0, 1);
        for _ in 0..3 {
            let _ = s.get(0);
        }
        // a scan of one-hit keys, twice the budget
        for k in 1..=200 {
            s.insert(k, k, 1);
            let _ = s.get(0);
        }
        assert!(s.peek(0).is_some(), "the popular key survived the scan");
        assert!(s.used() <= 100);
    }

    #[test]
    fn replace_remove_and_retain_keep_the_count_of_bytes() {
        for eviction in [Eviction::Lru, Eviction::S3Fifo] {
            let mut s = Store::new(eviction, 1000);
            s.insert(1, "a", 100);
            s.insert(1, "b", 300);
            assert_eq!((s.used(), s.peek(1)), (300, Some(&"b")));
            s.insert(2, "c", 200);
            s.insert(3, "d", 200);
            assert_eq!(s.retain(|_, v| *v != "c"), 1);
            assert_eq!(s.used(), 500);
            assert_eq!(s.remove(1), Some("b"));
            assert_eq!((s.used(), s.len()), (200, 1));
        }
    }
}
