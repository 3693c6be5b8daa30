//! Routing and policy for shardgate, sans-IO: the compiled routing trie (`router`), the stage
//! pipeline (`pipeline`, `stages`), per-request state (`exchange`) and local replies (`reply`).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod cidr;
pub mod exchange;
pub mod lru;
pub mod pipeline;
pub mod query;
pub mod reply;
pub mod router;
pub mod stages;

pub use exchange::{Edits, Exchange, Identity};
pub use pipeline::{Pipeline, Rejection, Stage, StageBuild, StageContext, Verdict};
pub use reply::LocalReply;
pub use router::{Lookup, Params, RouteId, Router};
pub use stages::{AnyStage, KINDS};
