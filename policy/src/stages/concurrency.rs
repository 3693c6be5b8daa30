//! A limit on requests in flight (from routing until the response ends): the configured
//! `max` is the gateway's, each of N shards allowing its share (max/N, at least 1). Beyond
//! it, 503 with `Retry-After` — shedding load before a slow upstream drowns.
//!
//! ```toml
//! [[route.policy]]
//! kind = "concurrency"
//! max = 200
//! ```

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};

use proto::RequestHead;
use serde::Deserialize;

use crate::exchange::Exchange;
use crate::stage::{Rejection, Stage, StageBuild, StageContext, Verdict};

/// `[[route.policy]] kind = "concurrency"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Requests in flight at once, gateway-wide. Required.
    pub max: u32,
    /// Seconds in the `Retry-After` of a refusal. Default 1.
    #[serde(default = "one")]
    pub retry_after: u32,
}

fn one() -> u32 {
    1
}

/// Distinguishes stages in `Exchange::permits` (assigned at build, never on the request path).
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// The stage.
pub struct Concurrency {
    id: u32,
    limit: u32,
    in_flight: Cell<u32>,
    retry_after: String,
}

impl StageBuild for Concurrency {
    const KIND: &'static str = "concurrency";
    type Config = Config;

    fn build(c: Config, ctx: &StageContext<'_>) -> Result<Concurrency, String> {
        if c.max == 0 {
            return Err("max must be at least 1".into());
        }
        let shards = u32::try_from(ctx.shards).unwrap_or(u32::MAX).max(1);
        Ok(Concurrency {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            limit: c.max.div_ceil(shards),
            in_flight: Cell::new(0),
            retry_after: c.retry_after.to_string(),
        })
    }
}

impl Concurrency {
    /// Requests this stage admitted that have not finished.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.get()
    }
}

impl Stage for Concurrency {
    fn on_request(&self, _head: &RequestHead, _buf: &[u8], ex: &mut Exchange) -> Verdict<'_> {
        let n = self.in_flight.get();
        if n >= self.limit {
            return Verdict::Reject(
                Rejection::new(
                    503,
                    "concurrency",
                    "too many requests in flight on this route",
                )
                .with_field("Retry-After", &self.retry_after),
            );
        }
        self.in_flight.set(n + 1);
        ex.permits.push(self.id);
        Verdict::Continue
    }

    fn on_finish(&self, ex: &Exchange) {
        if ex.permits.contains(&self.id) {
            self.in_flight.set(self.in_flight.get().saturating_sub(1));
        }
    }
}
