//! Routing and policy for shardgate, sans-IO: the compiled routing trie (`router`), the stage
//! pipeline (`pipeline`, `stages`), per-request state (`exchange`) and local replies (`reply`).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod exchange;
pub mod pipeline;
pub mod reply;
pub mod router;
pub mod stages;

pub use exchange::Exchange;
pub use pipeline::{Pipeline, Stage, StageBuild, Verdict};
pub use reply::LocalReply;
pub use router::{Lookup, Params, RouteId, Router};
pub use stages::{AnyStage, KINDS};
