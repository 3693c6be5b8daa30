//! The response cache's rules, sans-IO: what `Cache-Control` says (`directives`), whether a
//! response may be stored and for how long it stays fresh, and how old a stored one is
//! (`freshness`, RFC 9111 §3 and §4.2 for a shared cache). The store and the stage that uses
//! them come next; everything here is a pure function of the heads and the times given.

pub mod directives;
pub mod freshness;
pub mod store;
