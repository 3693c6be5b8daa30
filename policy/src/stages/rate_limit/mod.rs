//! Token-bucket rate limits keyed by client address, consumer, route and/or a header value.
//! The configured rate is the gateway's total: each of the N shards enforces rate/N (and
//! burst/N, at least 1) for the keys it sees, so with traffic spread over the shards — as
//! SO_REUSEPORT spreads connections — the admitted total stays near the rate with no
//! cross-shard state. Buckets live in a per-shard LRU table of `max_keys` entries: a flood of
//! distinct keys evicts old buckets instead of growing memory.
//!
//! Refusals are 429 with `Retry-After` and the IETF `RateLimit-Policy` / `RateLimit` fields
//! (draft-ietf-httpapi-ratelimit-headers); `headers = true` adds them to admitted responses.
//! In `RateLimit`, `r` is the requests the bucket still admits (the gateway-wide estimate:
//! this shard's tokens × N) and, for a token bucket, `t` is the seconds until it admits one
//! more than `r`: 0 when full, and on a 429 (r=0) exactly `Retry-After`. While a burst
//! drains the bucket faster than it refills, `r` never grows.
//!
//! With `scope = "global"` the rate is the whole fleet's, leased from Redis (`lease`).
//!
//! ```toml
//! [[route.policy]]
//! kind = "rate_limit"
//! rate = 100
//! per = "1s"
//! burst = 20
//! key = ["ip"]
//! ```

use std::cell::RefCell;
use std::time::Instant;

use proto::RequestHead;
use serde::Deserialize;

pub mod key;
pub mod lease;

use crate::exchange::Exchange;
use crate::lru::Lru;
use crate::stage::{Figure, Rejection, Stage, StageBuild, StageContext, Verdict};
use key::Key;
use lease::{Decision, Global, OnDown, Pool, Reply, Spec};

/// `[[route.policy]] kind = "rate_limit"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Requests admitted per `per`, gateway-wide, per key.
    pub rate: u64,
    /// The window `rate` refers to. Default "1s".
    #[serde(default = "one_second")]
    pub per: conf::Duration,
    /// Requests that may arrive at once after a quiet period. Default: `rate`.
    #[serde(default)]
    pub burst: Option<u64>,
    /// What identifies a bucket: any of "ip", "consumer", "route", "header:NAME", combined.
    /// Default ["ip"].
    #[serde(default = "default_key")]
    pub key: Vec<String>,
    /// Buckets kept per shard; the least recently used is dropped beyond it. Default 100000.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
    /// Also send `RateLimit-Policy` / `RateLimit` on admitted responses. Default false.
    #[serde(default)]
    pub headers: bool,
    /// The policy's name in those fields. Default "default".
    #[serde(default = "default_name")]
    pub name: String,
    /// `"node"`: this gateway's rate; `"global"`: the fleet's, leased from `[redis]`.
    /// Default "node".
    #[serde(default = "default_scope")]
    pub scope: String,
    /// With `scope = "global"`, when Redis does not answer: `"local"` (this node's share,
    /// rate / `[redis] nodes`), `"deny"` (503) or `"allow"`. Default "local".
    #[serde(default = "default_down")]
    pub on_redis_down: String,
}

fn default_scope() -> String {
    "node".into()
}
fn default_down() -> String {
    "local".into()
}

fn one_second() -> conf::Duration {
    conf::Duration(std::time::Duration::from_secs(1))
}
fn default_key() -> Vec<String> {
    vec!["ip".into()]
}
fn default_max_keys() -> usize {
    100_000
}
fn default_name() -> String {
    "default".into()
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The stage.
pub struct RateLimit {
    /// Tokens per second for this shard.
    per_sec: f64,
    /// Bucket size for this shard.
    burst: f64,
    shards: f64,
    key: Key,
    buckets: RefCell<Lru<Bucket>>,
    headers: bool,
    /// `RateLimit-Policy` value, rendered once.
    policy_field: String,
    name: String,
    /// `scope = "global"`: leases from Redis (the buckets above are then the fallback).
    global: Option<Box<Global>>,
}

impl StageBuild for RateLimit {
    const KIND: &'static str = "rate_limit";
    type Config = Config;

    fn build(c: Config, ctx: &StageContext<'_>) -> Result<RateLimit, String> {
        if c.rate == 0 {
            return Err("rate must be at least 1".into());
        }
        let per = c.per.0.as_secs_f64();
        if per <= 0.0 {
            return Err("per must be longer than 0s".into());
        }
        if c.max_keys == 0 {
            return Err("max_keys must be at least 1".into());
        }
        key::check_name(&c.name)?;
        // global keys are the same on every node: hashed with fixed seeds
        let key = Key::parse(&c.key, c.scope == "global")?;
        let burst = c.burst.unwrap_or(c.rate);
        if burst == 0 {
            return Err("burst must be at least 1".into());
        }
        let down = match c.on_redis_down.as_str() {
            "local" => OnDown::Local,
            "deny" => OnDown::Deny,
            "allow" => OnDown::Allow,
            other => {
                return Err(format!(
                    "on_redis_down `{other}`: expected \"local\", \"deny\" or \"allow\""
                ));
            }
        };
        let (global, nodes) = match (c.scope.as_str(), ctx.redis) {
            ("node", _) => (None, 1.0),
            ("global", Some(r)) => {
                let route = ctx.address.route.as_ref().map_or("*", |(_, n)| &**n);
                let prefix = format!(
                    "{}rl:{route}:{}:{}:",
                    r.key_prefix, ctx.address.position, c.name
                );
                let nodes = f64::from(r.nodes.max(1));
                let copies = nodes * ctx.shards.max(1) as f64;
                let per_sec = c.rate as f64 / per;
                let spec = Spec {
                    prefix,
                    pool: Pool::Bucket {
                        per_ms: per_sec / 1000.0,
                        burst: burst as f64,
                        keep_ms: ((burst as f64 / per_sec * 2000.0) as u64).max(60_000),
                    },
                    max_batch: (burst as f64 / (2.0 * copies)).floor() as u32,
                    down,
                    address: ctx.address.clone(),
                    max_keys: c.max_keys,
                };
                let g = Box::new(Global::new(spec, r));
                (Some(g), nodes)
            }
            ("global", None) => {
                return Err("scope = \"global\" needs a [redis] section to lease from".into());
            }
            (other, _) => {
                return Err(format!("scope `{other}`: expected \"node\" or \"global\""));
            }
        };
        // the node buckets: the whole rate in node scope; this node's share in global scope
        // (what `on_redis_down = "local"` admits)
        let shards = ctx.shards.max(1) as f64 * nodes;
        Ok(RateLimit {
            global,
            per_sec: c.rate as f64 / per / shards,
            burst: (burst as f64 / shards).ceil().max(1.0),
            shards,
            key,
            buckets: RefCell::new(Lru::new(c.max_keys)),
            headers: c.headers,
            policy_field: format!("\"{}\";q={};w={}", c.name, c.rate, per.ceil() as u64),
            name: c.name,
        })
    }
}

impl RateLimit {
    /// Whole seconds until this shard's bucket, holding `tokens`, holds one more whole
    /// token (0 when it is full): when the next request beyond those it admits now can go.
    fn next_in(&self, tokens: f64) -> u64 {
        let tokens = tokens.max(0.0);
        if tokens >= self.burst {
            return 0;
        }
        let next = (tokens.floor() + 1.0).min(self.burst);
        // a nanosecond of slack, so float noise (3.0000000000000004 s) does not round up
        ((next - tokens) / self.per_sec - 1e-9).ceil().max(1.0) as u64
    }

    /// `RateLimit` field value for `tokens` left in this shard's bucket.
    fn limit_field(&self, tokens: f64) -> String {
        let remaining = (tokens.max(0.0) * self.shards).floor() as u64;
        format!("\"{}\";r={remaining};t={}", self.name, self.next_in(tokens))
    }
}

impl Stage for RateLimit {
    fn on_request(&self, head: &RequestHead, buf: &[u8], ex: &mut Exchange) -> Verdict<'_> {
        let key = self.key.of(head, buf, ex);
        let now = ex.now;
        if let Some(g) = &self.global {
            match g.decide(key, now) {
                Decision::Admit(held) => return self.admit(held.tokens, ex),
                Decision::Refuse(secs) => return self.refuse(secs, 0.0),
                // waited as often as an exchange may: a token it could not get is a refusal
                Decision::Wait(_) if ex.waits >= crate::stage::MAX_WAITS => {
                    return self.refuse(1, 0.0);
                }
                Decision::Wait(gate) => return Verdict::Wait(gate),
                Decision::Down => {
                    g.count_down();
                    match g.down {
                        OnDown::Local => {}
                        OnDown::Allow => return Verdict::Continue,
                        OnDown::Deny => {
                            return Verdict::Reject(
                                Rejection::new(
                                    503,
                                    "rate_limit.redis_down",
                                    "the global rate limit cannot be checked now",
                                )
                                .with_field("Retry-After", "1"),
                            );
                        }
                    }
                }
            }
        }
        let (admitted, tokens) = {
            let mut buckets = self.buckets.borrow_mut();
            match buckets.get_or_insert_with(key, || Bucket {
                tokens: self.burst,
                at: now,
            }) {
                Some(b) => {
                    let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
                    b.tokens = (b.tokens + elapsed * self.per_sec).min(self.burst);
                    b.at = now;
                    if b.tokens >= 1.0 {
                        b.tokens -= 1.0;
                        (true, b.tokens)
                    } else {
                        (false, b.tokens)
                    }
                }
                // cannot happen (the table returns the entry it holds); a limiter errs open
                None => (true, self.burst),
            }
        };
        if admitted {
            return self.admit(tokens, ex);
        }
        // the same number as `t`: the client may send again once one token is back
        self.refuse(self.next_in(tokens), tokens)
    }

    fn on_letter(&self, _from: usize, body: Box<dyn std::any::Any + Send>, _wall: u64) {
        if let (Some(g), Ok(reply)) = (&self.global, body.downcast::<Reply>()) {
            g.answer(*reply);
        }
    }

    fn figures(&self) -> Vec<Figure> {
        let Some(g) = &self.global else {
            return Vec::new();
        };
        let [asked, granted, denied, errors, down, _] = &g.counts;
        crate::slots::counted(&[
            ("leases_asked", asked),
            ("tokens_granted", granted),
            ("leases_denied", denied),
            ("redis_errors", errors),
            ("decided_redis_down", down),
        ])
    }
}

impl RateLimit {
    fn admit(&self, tokens: f64, ex: &mut Exchange) -> Verdict<'_> {
        if self.headers {
            // one line per field with a member per policy (a quota's beside this one)
            proto::write::put_list_field(
                &mut ex.response.add,
                b"RateLimit-Policy",
                self.policy_field.as_bytes(),
            );
            proto::write::put_list_field(
                &mut ex.response.add,
                b"RateLimit",
                self.limit_field(tokens).as_bytes(),
            );
        }
        Verdict::Continue
    }

    fn refuse(&self, retry: u64, tokens: f64) -> Verdict<'_> {
        Verdict::Reject(
            Rejection::new(
                429,
                "rate_limit",
                "rate limit exceeded; retry after the time in Retry-After",
            )
            .with_field("Retry-After", &retry.to_string())
            .with_field("RateLimit-Policy", &self.policy_field)
            .with_field("RateLimit", &self.limit_field(tokens)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stage(text: &str, shards: usize) -> Result<RateLimit, String> {
        let cfg: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        let ctx = StageContext::alone(shards, std::path::Path::new("."));
        RateLimit::build(cfg, &ctx)
    }

    /// The status and the `RateLimit` / `Retry-After` values of a request at `at`.
    fn ask(s: &RateLimit, head: &RequestHead, buf: &[u8], at: Instant) -> (u16, String, String) {
        let mut ex = Exchange {
            now: at,
            ..Exchange::default()
        };
        let field = |fields: &[u8], name: &str| -> String {
            String::from_utf8_lossy(fields)
                .split("\r\n")
                .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
                .unwrap_or_default()
        };
        match s.on_request(head, buf, &mut ex) {
            Verdict::Continue => (200, field(&ex.response.add, "RateLimit"), String::new()),
            Verdict::Reject(r) => (
                r.status,
                field(&r.fields, "RateLimit"),
                field(&r.fields, "Retry-After"),
            ),
            _ => (0, String::new(), String::new()),
        }
    }

    /// Issue 9: on a 429 `t` and `Retry-After` agree; on admitted responses `t` is the time
    /// until one more request is admitted, and `r` never grows while a burst drains.
    #[test]
    fn issue_9_ratelimit_t_agrees_with_retry_after() -> Result<(), String> {
        // 1 request per 4 s, bursts of 3: a token every 4 s
        let s = stage(
            "rate = 1\nper = \"4s\"\nburst = 3\nheaders = true\nname = \"p\"",
            1,
        )?;
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut head = RequestHead::with_capacity(4);
        proto::parse_request(buf, &mut head, &proto::Limits::default())
            .map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let table: &[(u64, u16, &str, &str)] = &[
            // a burst: r goes 2, 1, 0; one token comes back 4 s after the first one left
            (0, 200, "\"p\";r=2;t=4", ""),
            (10, 200, "\"p\";r=1;t=4", ""),
            (20, 200, "\"p\";r=0;t=4", ""),
            (1000, 429, "\"p\";r=0;t=3", "3"),
            (3500, 429, "\"p\";r=0;t=1", "1"),
            // 4 s after the first request one token is back (0.99 + 0.01 refill)
            (4020, 200, "\"p\";r=0;t=4", ""),
            (4030, 429, "\"p\";r=0;t=4", "4"),
            // a long quiet time fills the bucket: t is 0 only while it is full
            (60000, 200, "\"p\";r=2;t=4", ""),
        ];
        for (at, status, limit, retry) in table {
            assert_eq!(
                ask(&s, &head, buf, ms(*at)),
                (*status, limit.to_string(), retry.to_string()),
                "at {at} ms"
            );
        }
        // a full bucket reports t=0
        assert_eq!(s.next_in(3.0), 0);
        assert_eq!(s.limit_field(3.0), "\"p\";r=3;t=0");
        Ok(())
    }
}
