//! `Slots<T>`: state a stage keeps for an exchange from one hook to the next (the coding a
//! request chose, a body being held), keyed by the exchange's serial on its shard, and
//! forgotten in `on_finish` whatever the outcome.

use std::cell::RefCell;

/// Per-exchange values of one stage on one shard.
pub struct Slots<T> {
    map: RefCell<ahash::AHashMap<u64, T>>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            map: RefCell::default(),
        }
    }
}

impl<T> Slots<T> {
    /// Keeps `value` for exchange `serial`.
    pub fn put(&self, serial: u64, value: T) {
        self.map.borrow_mut().insert(serial, value);
    }

    /// Takes exchange `serial`'s value away.
    pub fn take(&self, serial: u64) -> Option<T> {
        self.map.borrow_mut().remove(&serial)
    }

    /// Whether exchange `serial` has a value.
    pub fn has(&self, serial: u64) -> bool {
        self.map.borrow().contains_key(&serial)
    }

    /// Runs `f` on exchange `serial`'s value, when it has one.
    pub fn with<R>(&self, serial: u64, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        self.map.borrow_mut().get_mut(&serial).map(f)
    }

    /// Forgets exchange `serial` (its response was cut short, or never came).
    pub fn forget(&self, serial: u64) {
        if !self.map.borrow().is_empty() {
            self.map.borrow_mut().remove(&serial);
        }
    }
}

/// The figures of named counters, for `Stage::figures`.
pub fn counted(counts: &[(&'static str, &std::cell::Cell<u64>)]) -> Vec<crate::stage::Figure> {
    counts
        .iter()
        .map(|&(name, v)| crate::stage::Figure {
            name,
            value: v.get(),
            gauge: false,
            labels: Vec::new(),
        })
        .collect()
}
