//! shardgate's load tools: a load generator (closed and open loop, coordinated omission
//! corrected), a built-in origin cheap enough never to be the bottleneck, and `compare`, which
//! runs scenarios against shardgate, nginx and HAProxy side by side.

pub mod client;
pub mod compare;
pub mod generator;
pub mod h2load;
pub mod origin;
pub mod out;
pub mod report;
pub mod scenario;
pub mod tls;

use std::sync::atomic::AtomicBool;

/// Set on Ctrl-C: generators stop scheduling, the runner stops what it started and exits.
pub static STOP: AtomicBool = AtomicBool::new(false);
