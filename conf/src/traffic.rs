//! Traffic-management settings of an `[[upstream]]`: its targets (with weights), the balancer,
//! and the `[upstream.health]`, `[upstream.outlier]` and `[upstream.retry]` tables.

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::values::Duration;

/// One target as written: `"host:port"` or `{ address = "host:port", weight = N }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetConf {
    /// `host:port`.
    pub address: String,
    /// Share of traffic relative to the group's other targets (≥ 1).
    pub weight: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetTable {
    address: String,
    #[serde(default = "one")]
    weight: u32,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TargetForm {
    Short(String),
    Table(TargetTable),
}

impl<'de> Deserialize<'de> for TargetConf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(
            match TargetForm::deserialize(d).map_err(|_| {
                serde::de::Error::custom(
                    "a target is \"host:port\" or { address = \"host:port\", weight = N }",
                )
            })? {
                TargetForm::Short(address) => TargetConf { address, weight: 1 },
                TargetForm::Table(t) => TargetConf {
                    address: t.address,
                    weight: t.weight,
                },
            },
        )
    }
}

/// How a group picks a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BalanceConf {
    /// Each target in turn (weights ignored).
    RoundRobin,
    /// Smooth weighted round robin.
    WeightedRoundRobin,
    /// The target with the fewest requests in flight (relative to its weight).
    LeastOutstanding,
    /// Two random targets, the one with fewer requests in flight (relative to weight).
    #[default]
    P2c,
    /// A hash ring over `hash_on`, with bounded load.
    RingHash,
    /// Maglev consistent hashing over `hash_on`, with bounded load.
    Maglev,
    /// A hash of the client's address.
    IpHash,
}

impl BalanceConf {
    /// True for the balancers that hash a key.
    pub fn hashes(self) -> bool {
        matches!(self, BalanceConf::RingHash | BalanceConf::Maglev)
    }
}

/// What a hashing balancer hashes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HashOn {
    /// The client's IP address.
    #[default]
    ClientIp,
    /// The value of a request header.
    Header(String),
    /// The value of a cookie.
    Cookie(String),
    /// A route parameter (`{name}` in the route's path).
    Param(String),
}

impl<'de> Deserialize<'de> for HashOn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        HashOn::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl HashOn {
    /// `client_ip`, `header:NAME`, `cookie:NAME` or `param:NAME`.
    pub fn parse(s: &str) -> Result<HashOn, String> {
        let bad =
            || format!("hash_on `{s}`: expected client_ip, header:NAME, cookie:NAME or param:NAME");
        if s == "client_ip" {
            return Ok(HashOn::ClientIp);
        }
        let (kind, name) = s.split_once(':').ok_or_else(bad)?;
        if name.is_empty() {
            return Err(bad());
        }
        let name = name.to_string();
        match kind {
            "header" => Ok(HashOn::Header(name)),
            "cookie" => Ok(HashOn::Cookie(name)),
            "param" => Ok(HashOn::Param(name)),
            _ => Err(bad()),
        }
    }
}

/// `[upstream.health]`: active checks, run once per gateway, verdicts sent to every shard.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConf {
    /// `"http"` (a GET of `path`) or `"tcp"` (a connect).
    #[serde(default)]
    pub check: CheckKind,
    /// Path of the HTTP check.
    #[serde(default = "defaults::path")]
    pub path: String,
    /// Statuses that pass (default: any 2xx or 3xx).
    #[serde(default)]
    pub statuses: Vec<u16>,
    /// A string the body must contain to pass (default: none).
    #[serde(default)]
    pub body_contains: Option<String>,
    /// Time between checks of one target.
    #[serde(default = "defaults::interval")]
    pub interval: Duration,
    /// Time allowed for one check.
    #[serde(default = "defaults::timeout")]
    pub timeout: Duration,
    /// Random extra delay before each check, up to this (spreads checks out).
    #[serde(default = "defaults::jitter")]
    pub jitter: Duration,
    /// Passed checks in a row that mark a down target up.
    #[serde(default = "defaults::healthy")]
    pub healthy_threshold: u32,
    /// Failed checks in a row that mark an up target down.
    #[serde(default = "defaults::unhealthy")]
    pub unhealthy_threshold: u32,
    /// State of a target before its first verdict: `"healthy"` or `"probing"` (down until
    /// `healthy_threshold` checks passed).
    #[serde(default)]
    pub start: StartState,
}

/// The kind of active check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// An HTTP GET.
    #[default]
    Http,
    /// A TCP connect.
    Tcp,
}

/// A target's state before its first verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartState {
    /// Serving from the start.
    #[default]
    Healthy,
    /// Not serving until checks pass.
    Probing,
}

/// `[upstream.outlier]`: passive health, from the answers real requests get.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierConf {
    /// Connect failures, resets or 5xx in a row that eject a target (0: never).
    #[serde(default = "defaults::consecutive")]
    pub consecutive_failures: u32,
    /// Count 5xx answers as failures (else only connect failures, resets and timeouts).
    #[serde(default = "defaults::yes")]
    pub count_5xx: bool,
    /// First ejection's length; each repeated ejection doubles it.
    #[serde(default = "defaults::ejection")]
    pub base_ejection: Duration,
    /// Longest ejection.
    #[serde(default = "defaults::max_ejection")]
    pub max_ejection: Duration,
    /// Most of the group ejected at once, in percent; with more of it unusable, requests go
    /// across all targets (panic mode).
    #[serde(default = "defaults::percent")]
    pub max_ejected_percent: u8,
}

impl Default for OutlierConf {
    fn default() -> OutlierConf {
        OutlierConf {
            consecutive_failures: defaults::consecutive(),
            count_5xx: true,
            base_ejection: defaults::ejection(),
            max_ejection: defaults::max_ejection(),
            max_ejected_percent: defaults::percent(),
        }
    }
}

/// `[upstream.retry]`: trying another target when an attempt fails before any response byte
/// went to the client.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConf {
    /// Retries after the first attempt (0: none).
    #[serde(default = "defaults::retries")]
    pub retries: u32,
    /// Response statuses that are retried (besides connect failures and resets).
    #[serde(default = "defaults::on_status")]
    pub on_status: Vec<Spanned<u16>>,
    /// Retry non-idempotent methods (POST, PATCH) too, after a reset or a status; a connect
    /// failure is retried for any method whose body is in hand.
    #[serde(default)]
    pub non_idempotent: bool,
    /// Wait before the first retry, doubled for each next one, with full jitter.
    #[serde(default = "defaults::backoff")]
    pub backoff: Duration,
    /// Longest wait before a retry.
    #[serde(default = "defaults::max_backoff")]
    pub max_backoff: Duration,
    /// Retries may add at most this share on top of regular requests, per shard (0.2 = 20 %).
    #[serde(default = "defaults::budget")]
    pub budget: f64,
}

impl Default for RetryConf {
    fn default() -> RetryConf {
        RetryConf {
            retries: defaults::retries(),
            on_status: defaults::on_status(),
            non_idempotent: false,
            backoff: defaults::backoff(),
            max_backoff: defaults::max_backoff(),
            budget: defaults::budget(),
        }
    }
}

/// `[upstream.breaker]`: a circuit breaker per target.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConf {
    /// The sliding window the failure rate is measured over.
    #[serde(default = "defaults::window")]
    pub window: Duration,
    /// Share of failed requests (connect failures, resets, timeouts, 5xx) that opens it.
    #[serde(default = "defaults::failure_rate")]
    pub failure_rate: f64,
    /// Fewest requests in the window before it may open.
    #[serde(default = "defaults::min_requests")]
    pub min_requests: u32,
    /// Time open before trial requests go through (half-open).
    #[serde(default = "defaults::cool_down")]
    pub cool_down: Duration,
    /// Trial requests that must all pass to close it again.
    #[serde(default = "defaults::trials")]
    pub trials: u32,
    /// With every target open: answer this status instead of a 503 problem.
    #[serde(default)]
    pub fallback_status: Option<u16>,
    /// The fallback answer's body.
    #[serde(default)]
    pub fallback_body: String,
    /// The fallback answer's Content-Type.
    #[serde(default = "defaults::fallback_type")]
    pub fallback_content_type: String,
}

mod defaults {
    pub fn window() -> Duration {
        Duration::secs(10)
    }
    pub fn failure_rate() -> f64 {
        0.5
    }
    pub fn min_requests() -> u32 {
        20
    }
    pub fn cool_down() -> Duration {
        Duration::secs(5)
    }
    pub fn trials() -> u32 {
        3
    }
    pub fn fallback_type() -> String {
        "application/json".into()
    }
    use crate::values::Duration;
    pub fn path() -> String {
        "/".into()
    }
    pub fn interval() -> Duration {
        Duration::secs(5)
    }
    pub fn timeout() -> Duration {
        Duration::secs(1)
    }
    pub fn jitter() -> Duration {
        Duration(std::time::Duration::from_millis(500))
    }
    pub fn healthy() -> u32 {
        2
    }
    pub fn unhealthy() -> u32 {
        3
    }
    pub fn consecutive() -> u32 {
        5
    }
    pub fn yes() -> bool {
        true
    }
    pub fn ejection() -> Duration {
        Duration::secs(10)
    }
    pub fn max_ejection() -> Duration {
        Duration::secs(300)
    }
    pub fn percent() -> u8 {
        50
    }
    pub fn retries() -> u32 {
        1
    }
    pub fn on_status() -> Vec<toml::Spanned<u16>> {
        Vec::new()
    }
    pub fn backoff() -> Duration {
        Duration(std::time::Duration::from_millis(0))
    }
    pub fn max_backoff() -> Duration {
        Duration(std::time::Duration::from_millis(250))
    }
    pub fn budget() -> f64 {
        0.2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_on_forms() {
        assert_eq!(HashOn::parse("client_ip"), Ok(HashOn::ClientIp));
        assert_eq!(
            HashOn::parse("header:X-User"),
            Ok(HashOn::Header("X-User".into()))
        );
        assert_eq!(
            HashOn::parse("cookie:sid"),
            Ok(HashOn::Cookie("sid".into()))
        );
        assert_eq!(HashOn::parse("param:id"), Ok(HashOn::Param("id".into())));
        for bad in ["", "header:", "ip", "query:x"] {
            assert!(HashOn::parse(bad).is_err(), "{bad}");
        }
    }
}
