//! shardgate's data path: shards, listeners, the per-connection loop, forwarding, upstream
//! pools, errors and cross-shard control.
#![warn(missing_docs)]

pub mod body;
pub mod control;
pub mod downstream;
pub mod error;
pub mod forward;
pub mod gateway;
pub mod headers;
pub mod io;
pub mod jwks;
pub mod listener;
pub mod log;
pub mod shard;
pub mod sys;
pub mod upstream;
