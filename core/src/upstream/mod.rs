//! The upstream side: per-shard keep-alive pools (`pool`) and connection set-up (`connect`).

pub mod connect;
pub mod pool;
