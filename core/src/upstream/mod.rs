//! The upstream side: target choice (`select`), per-shard keep-alive pools (`pool`),
//! connection set-up (`connect`), and a small HTTP/1.1 client of our own (`client`).

pub mod client;
pub mod connect;
pub mod pool;
pub mod select;
