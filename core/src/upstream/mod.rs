//! The upstream side: target choice (`select`), per-shard keep-alive pools (`pool`),
//! connection set-up (`connect`), a small HTTP/1.1 client of our own (`client`), and the
//! active health prober (`health`); targets that change (`discovery`); a route's choice of
//! group (`route_choice`).

pub mod client;
pub mod connect;
pub mod discovery;
pub mod health;
pub mod mux;
pub mod pool;
pub mod route_choice;
pub mod select;
