//! The per-shard table of a cache stage: responses and `Vary` markers in the byte-budgeted
//! store under hashes of their keys (the key text checked on every lookup), the lookup of a
//! request's response through its variant, inserts, invalidation, purges and the counts.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::Purge;
use super::entry::Entry;
use super::freshness::ResponseFacts;
use super::key::normalise;
use super::store::{Eviction, Store};
use crate::stage::Figure;

/// What the store holds under a key's hash.
enum Slot {
    /// A response (its key text is checked on lookup: a hash collision is a miss).
    Response(Rc<Entry>),
    /// The primary key's responses vary on these request fields: each variant is stored
    /// under the primary key, this generation and the request's values. A new marker gets
    /// a new generation, so variants of an invalidated or replaced one are never found.
    Vary {
        key: Box<[u8]>,
        names: Rc<[Vec<u8>]>,
        generation: u64,
    },
}

/// What a lookup found.
pub enum Found {
    /// A stored response for this request.
    Entry(Rc<Entry>),
    /// Nothing under the primary key.
    UriMiss,
    /// Responses under the primary key, none for this request's variant.
    VaryMiss,
}

/// A response being stored while it streams to the client.
pub struct Fill {
    /// The request fields it varies on (lowercased `Vary` names; empty: none).
    pub vary: Vec<Vec<u8>>,
    /// Its freshness facts.
    pub facts: ResponseFacts,
    /// Its stored field lines.
    pub fields: Vec<u8>,
    /// The body so far.
    pub body: Vec<u8>,
}

/// What the stage counts on its shard.
#[derive(Default)]
pub struct Counts {
    /// Hits.
    pub hits: Cell<u64>,
    /// Misses.
    pub misses: Cell<u64>,
    /// Stored.
    pub stored: Cell<u64>,
    /// Revalidated.
    pub revalidated: Cell<u64>,
    /// Stale served.
    pub stale_served: Cell<u64>,
    /// Invalidated.
    pub invalidated: Cell<u64>,
    /// Purged.
    pub purged: Cell<u64>,
    /// Bytes served.
    pub bytes_served: Cell<u64>,
    /// Misses that waited for another's response.
    pub coalesced: Cell<u64>,
    /// Background refreshes asked for (`stale-while-revalidate`).
    pub refreshes: Cell<u64>,
}

/// Adds `n` to a count.
pub fn bump(c: &Cell<u64>, n: u64) {
    c.set(c.get().wrapping_add(n));
}

/// A cache stage's store and counts on one shard.
pub struct Table {
    store: RefCell<Store<Slot>>,
    generation: Cell<u64>,
    hasher: ahash::RandomState,
    /// What it counted.
    pub counts: Counts,
}

/// The key a variant is stored under.
pub fn variant_key<'a>(
    primary: &[u8],
    generation: u64,
    names: &[Vec<u8>],
    field: impl Fn(&[u8]) -> Option<&'a [u8]>,
) -> Vec<u8> {
    let mut k = Vec::with_capacity(primary.len() + 32);
    k.extend_from_slice(primary);
    k.extend_from_slice(b"\n\0");
    proto::write::put_decimal(&mut k, generation);
    for n in names {
        k.push(b'\n');
        k.extend_from_slice(n);
        match field(n) {
            Some(v) => {
                k.push(b':');
                k.extend_from_slice(&normalise(v));
            }
            None => k.push(b'!'),
        }
    }
    k
}

impl Table {
    /// An empty table of `budget` bytes.
    pub fn new(eviction: Eviction, budget: u64) -> Table {
        Table {
            store: RefCell::new(Store::new(eviction, budget)),
            generation: Cell::new(0),
            hasher: ahash::RandomState::new(),
            counts: Counts::default(),
        }
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// What is stored for a request with primary key `primary` and fields `field(name)`.
    pub fn find<'a>(&self, primary: &[u8], field: impl Fn(&[u8]) -> Option<&'a [u8]>) -> Found {
        let mut store = self.store.borrow_mut();
        let (names, generation) = match store.get(self.hash(primary)) {
            Some(Slot::Response(e)) if *e.key == *primary => return Found::Entry(e.clone()),
            Some(Slot::Vary {
                key,
                names,
                generation,
            }) if **key == *primary => (names.clone(), *generation),
            _ => return Found::UriMiss,
        };
        let vk = variant_key(primary, generation, &names, field);
        match store.get(self.hash(&vk)) {
            Some(Slot::Response(e)) if *e.key == *vk => Found::Entry(e.clone()),
            _ => Found::VaryMiss,
        }
    }

    /// The `Vary` marker stored for `primary`, if any.
    fn marker(&self, primary: &[u8]) -> Option<(Rc<[Vec<u8>]>, u64)> {
        match self.store.borrow().peek(self.hash(primary)) {
            Some(Slot::Vary {
                key,
                names,
                generation,
            }) if **key == *primary => Some((names.clone(), *generation)),
            _ => None,
        }
    }

    /// Stores a finished fill for a request with primary key `primary`, URL `url` and
    /// fields `field(name)`: under the primary key, or under its variant's key when it
    /// varies (after a new marker when the named fields changed, so older variants are
    /// never found again).
    pub fn insert<'a>(
        &self,
        f: Fill,
        primary: &[u8],
        url: &[u8],
        field: impl Fn(&[u8]) -> Option<&'a [u8]>,
    ) {
        let key = if f.vary.is_empty() {
            Box::from(primary)
        } else {
            let (names, generation) = match self.marker(primary) {
                Some((n, g)) if *n == *f.vary => (n, g),
                _ => {
                    self.generation.set(self.generation.get() + 1);
                    let names: Rc<[Vec<u8>]> = Rc::from(f.vary);
                    let generation = self.generation.get();
                    let size =
                        (primary.len() * 2 + names.iter().map(Vec::len).sum::<usize>()) as u64 + 64;
                    let slot = Slot::Vary {
                        key: Box::from(primary),
                        names: names.clone(),
                        generation,
                    };
                    if !self
                        .store
                        .borrow_mut()
                        .insert(self.hash(primary), slot, size)
                    {
                        return;
                    }
                    (names, generation)
                }
            };
            variant_key(primary, generation, &names, field).into_boxed_slice()
        };
        let e = Entry::new(
            key,
            Box::from(url),
            f.facts,
            f.fields.into_boxed_slice(),
            bytes::Bytes::from(f.body),
        );
        let size = e.size();
        let h = self.hash(&e.key);
        if self
            .store
            .borrow_mut()
            .insert(h, Slot::Response(Rc::new(e)), size)
        {
            bump(&self.counts.stored, 1);
        }
    }

    /// Re-stores `e` under its own key (a freshened entry).
    pub fn replace(&self, e: Rc<Entry>) {
        let size = e.size();
        let h = self.hash(&e.key);
        self.store.borrow_mut().insert(h, Slot::Response(e), size);
    }

    /// Forgets what is stored for `primary` (an unsafe request succeeded).
    pub fn invalidate(&self, primary: &[u8]) {
        if self.store.borrow_mut().remove(self.hash(primary)).is_some() {
            bump(&self.counts.invalidated, 1);
        }
    }

    /// Its figures: counts and levels.
    pub fn figures(&self) -> Vec<Figure> {
        let c = &self.counts;
        let count = |name, v: &Cell<u64>| Figure {
            name,
            value: v.get(),
            gauge: false,
            labels: Vec::new(),
        };
        let store = self.store.borrow();
        vec![
            count("hits", &c.hits),
            count("misses", &c.misses),
            count("stored", &c.stored),
            count("revalidated", &c.revalidated),
            count("stale_served", &c.stale_served),
            count("invalidated", &c.invalidated),
            count("purged", &c.purged),
            count("bytes_served", &c.bytes_served),
            count("coalesced", &c.coalesced),
            count("refreshes", &c.refreshes),
            Figure {
                name: "entries",
                value: store.len() as u64,
                gauge: true,
                labels: Vec::new(),
            },
            Figure {
                name: "bytes_stored",
                value: store.used(),
                gauge: true,
                labels: Vec::new(),
            },
        ]
    }

    /// Drops the responses `what` names; how many.
    pub fn purge(&self, what: &Purge) -> u64 {
        let mut removed = 0;
        let v = what.value().as_bytes();
        self.store.borrow_mut().retain(|_, slot| {
            let Slot::Response(e) = slot else {
                return true;
            };
            let gone = match what {
                Purge::Key(_) => names_url(&e.url, v, false),
                Purge::Prefix(_) => names_url(&e.url, v, true),
                Purge::Tag(_) => e.tags.iter().any(|t| **t == *v),
            };
            removed += u64::from(gone);
            !gone
        });
        bump(&self.counts.purged, removed);
        removed
    }
}

/// Whether stored URL `url` (`host\npath`) is what purge value `v` names (`host/path` or
/// `/path` on any host); `prefix`: `v` may be a prefix of it.
fn names_url(url: &[u8], v: &[u8], prefix: bool) -> bool {
    let split = url.iter().position(|&c| c == b'\n').unwrap_or(url.len());
    let (host, path) = (
        url.get(..split).unwrap_or_default(),
        url.get(split + 1..).unwrap_or_default(),
    );
    let same = |have: &[u8], want: &[u8]| {
        if prefix {
            have.starts_with(want)
        } else {
            have == want
        }
    };
    if v.starts_with(b"/") {
        return same(path, v);
    }
    let vs = v.iter().position(|&c| c == b'/').unwrap_or(v.len());
    let (vh, vp) = (
        v.get(..vs).unwrap_or_default(),
        v.get(vs..).unwrap_or_default(),
    );
    vh.eq_ignore_ascii_case(host) && same(path, vp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_values_name_urls_table() {
        let rows: &[(&[u8], &[u8], bool, bool)] = &[
            (b"a.example\n/x?q=1", b"a.example/x?q=1", false, true),
            (b"a.example\n/x?q=1", b"A.example/x?q=1", false, true),
            (b"a.example\n/x?q=1", b"/x?q=1", false, true),
            (b"a.example\n/x?q=1", b"/x", false, false),
            (b"a.example\n/x?q=1", b"/x", true, true),
            (b"a.example\n/x?q=1", b"b.example/x?q=1", false, false),
            (b"a.example\n/x/y", b"a.example/x/", true, true),
            (b"a.example\n/xy", b"a.example/x/", true, false),
            (b"a.example\n/xy", b"a.example", true, true),
            (b"a.example\n/xy", b"a.example", false, false),
        ];
        for (url, v, prefix, want) in rows {
            assert_eq!(
                names_url(url, v, *prefix),
                *want,
                "{:?} {:?} prefix={prefix}",
                String::from_utf8_lossy(url),
                String::from_utf8_lossy(v)
            );
        }
    }

    #[test]
    fn variant_keys_differ_by_generation_and_value() {
        let names = [b"accept-encoding".to_vec()];
        let gz = |_: &[u8]| Some(&b"gzip"[..]);
        let none = |_: &[u8]| None;
        let a = variant_key(b"h\n/", 1, &names, gz);
        assert_ne!(a, variant_key(b"h\n/", 2, &names, gz));
        assert_ne!(a, variant_key(b"h\n/", 1, &names, none));
        assert_eq!(
            a,
            variant_key(b"h\n/", 1, &names, |_: &[u8]| Some(&b" gzip "[..]))
        );
    }
}
