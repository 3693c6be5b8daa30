//! shardgate's data path: shard threads (`runtime`) and their state (`shard`), the
//! per-connection loop (`downstream`) and its steps, upstream pools and selection, streams,
//! errors, and cross-shard control. The README's "Where the code is" table maps the steps.
#![warn(missing_docs)]

pub mod accept;
pub mod access_log;
pub mod admin;
pub mod aggregate;
pub mod aggregate_plan;
pub mod answer;
pub mod body;
pub mod broker;
pub mod calls;
pub mod clock;
pub mod conn;
pub mod control;
pub mod downstream;
pub mod error;
pub mod finish;
pub mod forward;
pub mod gateway;
pub mod grpc;
pub mod h2;
pub mod headers;
pub mod io;
pub mod listener;
pub mod log;
pub mod manage;
pub mod metrics;
pub mod park;
pub mod reload;
pub mod runtime;
pub mod shard;
pub mod stats;
pub mod stream;
pub mod sys;
pub mod tasks;
pub mod tls;
pub mod trace;
pub mod upstream;
