//! Quotas over long windows: `limit` requests per calendar hour, day or month (UTC) per key
//! (by default the consumer), counted for the whole fleet in `[redis]` by leases like a
//! global rate limit's (`rate_limit::lease`), so no request waits on Redis while its key is
//! busy. A quota is never exceeded: tokens are counted when leased, and unspent ones go back
//! after `lease_ttl`. The count is named by `name` and `key`, so quotas of one name on
//! several routes share it (a plan's monthly requests across an API); it outlives restarts
//! and reloads. Refusals are 429 with `Retry-After` (the window's end) and `RateLimit-Policy`
//! / `RateLimit`; `headers = true` adds them to admitted responses, on the same lines as a
//! `rate_limit`'s.
//!
//! ```toml
//! [[route.policy]]
//! kind = "quota"
//! limit = 10000
//! period = "month"
//! ```

use std::rc::Rc;
use std::time::Instant;

use proto::RequestHead;
use serde::Deserialize;

use crate::exchange::Exchange;
use crate::stage::{Figure, Rejection, Stage, StageBuild, StageContext, Verdict};
use crate::stages::rate_limit::key::{self, Key};
use crate::stages::rate_limit::lease::{Decision, Global, OnDown, Period, Pool, Reply, Spec};
use crate::task::{Next, Task, Wake};

/// `[[route.policy]] kind = "quota"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Requests admitted per `period`, fleet-wide, per key.
    pub limit: u64,
    /// The window: "hour", "day" or "month", calendar ones in UTC on Redis's clock.
    /// Default "day".
    #[serde(default = "default_period")]
    pub period: String,
    /// What a count is kept for: any of "ip", "consumer", "route", "header:NAME", combined.
    /// Default ["consumer"].
    #[serde(default = "default_key")]
    pub key: Vec<String>,
    /// Keys whose leases a shard holds; the least recently used is dropped beyond it.
    /// Default 100000.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
    /// Also send `RateLimit-Policy` / `RateLimit` on admitted responses. Default false.
    #[serde(default)]
    pub headers: bool,
    /// The quota's name, in those fields and in its Redis key. Default "quota".
    #[serde(default = "default_name")]
    pub name: String,
    /// When Redis does not answer: `"allow"` (admit) or `"deny"` (503). Default "allow".
    #[serde(default = "default_down")]
    pub on_redis_down: String,
}

fn default_period() -> String {
    "day".into()
}
fn default_key() -> Vec<String> {
    vec!["consumer".into()]
}
fn default_max_keys() -> usize {
    100_000
}
fn default_name() -> String {
    "quota".into()
}
fn default_down() -> String {
    "allow".into()
}

/// Hands back unspent tokens of expired leases (a task that never does IO).
struct Sweep {
    global: Rc<Global>,
    name: String,
}

impl Task for Sweep {
    fn describe(&self) -> String {
        format!("quota {}: unspent tokens handed back", self.name)
    }
    fn next(&self, now: Instant) -> Next {
        Next::Sleep(self.global.sweep(now))
    }
    fn done(&self, _result: Result<Vec<u8>, String>, _now: Instant) -> Result<String, String> {
        Ok(String::new())
    }
    fn wake(&self) -> &Wake {
        &self.global.wake
    }
}

/// The stage.
pub struct Quota {
    key: Key,
    global: Rc<Global>,
    sweep: Rc<Sweep>,
    headers: bool,
    /// `RateLimit-Policy` value, rendered once.
    policy_field: String,
    name: String,
}

impl StageBuild for Quota {
    const KIND: &'static str = "quota";
    type Config = Config;

    fn build(c: Config, ctx: &StageContext<'_>) -> Result<Quota, String> {
        let Some(redis) = ctx.redis else {
            return Err("a quota needs a [redis] section: it is counted there".into());
        };
        if c.limit == 0 {
            return Err("limit must be at least 1".into());
        }
        if c.max_keys == 0 {
            return Err("max_keys must be at least 1".into());
        }
        key::check_name(&c.name)?;
        let Some(period) = Period::parse(&c.period) else {
            return Err(format!(
                "period `{}`: expected \"hour\", \"day\" or \"month\"",
                c.period
            ));
        };
        let down = match c.on_redis_down.as_str() {
            "allow" => OnDown::Allow,
            "deny" => OnDown::Deny,
            other => {
                return Err(format!(
                    "on_redis_down `{other}`: expected \"allow\" or \"deny\""
                ));
            }
        };
        let key = Key::parse(&c.key, true)?;
        let copies = redis.nodes.max(1).saturating_mul(ctx.shards.max(1) as u32);
        let spec = Spec {
            prefix: format!("{}q:{}:", redis.key_prefix, c.name),
            pool: Pool::Quota {
                limit: c.limit,
                period,
                copies,
            },
            max_batch: u32::try_from(c.limit / (2 * u64::from(copies))).unwrap_or(u32::MAX),
            down,
            address: ctx.address.clone(),
            max_keys: c.max_keys,
        };
        let global = Rc::new(Global::new(spec, redis));
        Ok(Quota {
            key,
            sweep: Rc::new(Sweep {
                global: global.clone(),
                name: c.name.clone(),
            }),
            global,
            headers: c.headers,
            policy_field: format!("\"{}\";q={};w={}", c.name, c.limit, period.seconds()),
            name: c.name,
        })
    }
}

impl Quota {
    fn refuse(&self, secs: u64) -> Verdict<'_> {
        Verdict::Reject(
            Rejection::new(
                429,
                "quota",
                "quota exhausted for this period; retry after the time in Retry-After",
            )
            .with_field("Retry-After", &secs.to_string())
            .with_field("RateLimit-Policy", &self.policy_field)
            .with_field("RateLimit", &format!("\"{}\";r=0;t={secs}", self.name)),
        )
    }
}

impl Stage for Quota {
    fn on_request(&self, head: &RequestHead, buf: &[u8], ex: &mut Exchange) -> Verdict<'_> {
        let key = self.key.of(head, buf, ex);
        match self.global.decide(key, ex.now) {
            Decision::Admit(held) => {
                if self.headers {
                    let left = held.left.saturating_add(held.tokens.max(0.0) as u64);
                    let secs = held.resets_in.map_or(0, |d| d.as_secs_f64().ceil() as u64);
                    let add = &mut ex.response.add;
                    let policy = self.policy_field.as_bytes();
                    proto::write::put_list_field(add, b"RateLimit-Policy", policy);
                    let field = format!("\"{}\";r={left};t={secs}", self.name);
                    proto::write::put_list_field(add, b"RateLimit", field.as_bytes());
                }
                Verdict::Continue
            }
            Decision::Refuse(secs) => self.refuse(secs),
            // waited as often as an exchange may: a token it could not get is a refusal
            Decision::Wait(_) if ex.waits >= crate::stage::MAX_WAITS => self.refuse(1),
            Decision::Wait(gate) => Verdict::Wait(gate),
            Decision::Down => {
                self.global.count_down();
                match self.global.down {
                    OnDown::Deny => Verdict::Reject(
                        Rejection::new(503, "quota.redis_down", "the quota cannot be checked now")
                            .with_field("Retry-After", "1"),
                    ),
                    OnDown::Allow | OnDown::Local => Verdict::Continue,
                }
            }
        }
    }

    fn on_letter(&self, _from: usize, body: Box<dyn std::any::Any + Send>, _wall: u64) {
        if let Ok(reply) = body.downcast::<Reply>() {
            self.global.answer(*reply);
        }
    }

    fn tasks(&self) -> Vec<Rc<dyn Task>> {
        vec![self.sweep.clone() as Rc<dyn Task>]
    }

    fn figures(&self) -> Vec<Figure> {
        let [asked, granted, denied, errors, down, returned] = &self.global.counts;
        crate::slots::counted(&[
            ("leases_asked", asked),
            ("tokens_granted", granted),
            ("exhausted", denied),
            ("redis_errors", errors),
            ("decided_redis_down", down),
            ("tokens_returned", returned),
        ])
    }
}
