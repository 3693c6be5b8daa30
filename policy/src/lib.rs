//! Routing and policy for shardgate, sans-IO: the compiled routing trie (`router`), the stage
//! trait and pipeline (`stage`, `pipeline`, `stages`), per-request state (`exchange`), local
//! replies (`reply`), background tasks stages ask for (`task`) and target choice (`balance`).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod balance;
pub mod cache;
pub mod catalogue;
pub mod cidr;
pub mod exchange;
pub mod gate;
pub mod http_url;
pub mod letter;
pub mod lru;
pub mod oidc;
pub mod pipeline;
pub mod query;
pub mod reply;
pub mod router;
pub mod slots;
pub mod stage;
pub mod stages;
pub mod task;
pub mod template;

pub use exchange::{
    ClientCert, Edits, Exchange, FieldEdits, Identity, Outcome, Refresh, Replacement, Tap, TlsInfo,
    TokenUsage, UpstreamRecord,
};
pub use pipeline::{Pipeline, Pipelines};
pub use reply::LocalReply;
pub use router::{Lookup, Params, RouteId, Router};
pub use stage::{BodyTap, Figure, Piece, Rejection, Stage, StageBuild, StageContext, Verdict};
pub use stages::{AnyStage, KINDS};
