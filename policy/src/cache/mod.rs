//! The response cache, sans-IO: what `Cache-Control` says (`directives`), whether a response
//! may be stored, how long it stays fresh and how old a stored one is (`freshness`, RFC 9111
//! §3 and §4.2 for a shared cache), primary and `Vary` keys (`key`), conditional requests and
//! revalidation validators (`conditional`), the `Cache-Status` field (`status`), and the
//! byte-budgeted store with its eviction (`store`). The stage that puts them on the data path
//! comes next; everything here is a pure function of the heads and the times given.

pub mod conditional;
pub mod directives;
pub mod freshness;
pub mod key;
pub mod status;
pub mod store;
