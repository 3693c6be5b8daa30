//! The response cache, sans-IO: what `Cache-Control` says (`directives`), whether a response
//! may be stored, how long it stays fresh and how old a stored one is (`freshness`, RFC 9111
//! §3 and §4.2 for a shared cache), primary and `Vary` keys (`key`), conditional requests and
//! revalidation validators (`conditional`), the `Cache-Status` field (`status`), and the
//! byte-budgeted store with its eviction (`store`). The stage that puts them on the data path
//! (`stages::cache`) holds the per-shard store; everything here is a pure function of the
//! heads and the times given.

pub mod conditional;
pub mod directives;
pub mod entry;
pub mod freshness;
pub mod key;
pub mod status;
pub mod store;
pub mod table;

/// What a purge drops from the response caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purge {
    /// The objects of this URL (`host/path?query`, or `/path?query` on any host), every
    /// variant.
    Key(String),
    /// Every object whose URL (`host/path?query`, or `/path…` on any host) starts with this.
    Prefix(String),
    /// Every object whose response carried this `Cache-Tag`.
    Tag(String),
}

impl Purge {
    /// The key, prefix or tag.
    pub fn value(&self) -> &str {
        match self {
            Purge::Key(v) | Purge::Prefix(v) | Purge::Tag(v) => v,
        }
    }
}
