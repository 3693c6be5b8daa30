//! `[redis]`: the store `rate_limit` stages with `scope = "global"` lease tokens from, shared
//! by every gateway node; its model and checks.

use serde::Deserialize;
use toml::Spanned;

use crate::values::Duration;

/// `[redis]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConf {
    /// `host:port` of the Redis server.
    #[serde(default = "default_address")]
    pub address: Spanned<String>,
    /// Other servers holding the same data (replicas that may be promoted), tried in turn
    /// after `address`: at a failure the broker moves on to the next, so it settles on the
    /// one that answers and accepts writes. Default none.
    #[serde(default)]
    pub standbys: Vec<Spanned<String>>,
    /// Database number.
    #[serde(default)]
    pub database: u32,
    /// Prefix of every key the gateway writes.
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
    /// Time allowed to connect.
    #[serde(default = "default_connect")]
    pub connect_timeout: Duration,
    /// Time allowed for one command's answer; a slower Redis counts as down.
    #[serde(default = "default_command")]
    pub command_timeout: Duration,
    /// A file holding the password (`AUTH`), relative to the config file. Default none.
    #[serde(default)]
    pub password_file: Option<Spanned<String>>,
    /// Speak TLS to Redis, verifying its certificate (against `ca_file`, or the system's
    /// roots) for the host of `address`.
    #[serde(default)]
    pub tls: bool,
    /// With `tls`: a PEM bundle of the CAs that sign Redis's certificate, relative to the
    /// config file. Default: the system's roots.
    #[serde(default)]
    pub ca_file: Option<Spanned<String>>,
    /// With `tls`: a client certificate chain (PEM) for a Redis that asks for one
    /// (`tls-auth-clients`), with `key_file`. Default none.
    #[serde(default)]
    pub cert_file: Option<Spanned<String>>,
    /// The private key (PEM) of `cert_file`. Default none.
    #[serde(default)]
    pub key_file: Option<Spanned<String>>,
    /// How many gateway nodes share the global rates: with `on_redis_down = "local"` a node
    /// admits rate / nodes while Redis is away.
    #[serde(default = "one")]
    pub nodes: u32,
    /// How long leased tokens may be spent; unspent ones are dropped after it (the bound on
    /// over-admission is the tokens of unexpired leases).
    #[serde(default = "default_lease")]
    pub lease_ttl: Duration,
}

fn default_address() -> Spanned<String> {
    Spanned::new(0..0, "127.0.0.1:6379".to_string())
}
fn default_prefix() -> String {
    "shardgate:".to_string()
}
fn default_connect() -> Duration {
    Duration::millis(250)
}
fn default_command() -> Duration {
    Duration::millis(250)
}
fn one() -> u32 {
    1
}
fn default_lease() -> Duration {
    Duration::millis(1000)
}

/// Checks `[redis]`; problems with their place (`0..0`: the table).
pub fn check(r: &RedisConf) -> Vec<(std::ops::Range<usize>, String)> {
    let mut bad = Vec::new();
    for (what, a) in
        std::iter::once(("address", &r.address)).chain(r.standbys.iter().map(|a| ("standbys", a)))
    {
        let addr = a.get_ref();
        let port_ok = addr
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !port_ok {
            bad.push((
                a.span(),
                format!("[redis] {what} `{addr}`: expected host:port"),
            ));
        }
    }
    for (name, f) in [
        ("ca_file", &r.ca_file),
        ("cert_file", &r.cert_file),
        ("key_file", &r.key_file),
    ] {
        if let (Some(f), false) = (f, r.tls) {
            bad.push((f.span(), format!("[redis] {name} needs tls = true")));
        }
    }
    match (&r.cert_file, &r.key_file) {
        (Some(f), None) => bad.push((f.span(), "[redis] cert_file needs key_file".to_string())),
        (None, Some(f)) => bad.push((f.span(), "[redis] key_file needs cert_file".to_string())),
        _ => {}
    }
    if r.nodes == 0 {
        bad.push((0..0, "[redis] nodes must be at least 1".to_string()));
    }
    if r.lease_ttl.0.as_millis() < 100 {
        bad.push((0..0, "[redis] lease_ttl must be at least 100ms".to_string()));
    }
    if r.command_timeout.0.is_zero() || r.connect_timeout.0.is_zero() {
        bad.push((0..0, "[redis] timeouts must be above 0".to_string()));
    }
    if r.key_prefix
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ')
    {
        bad.push((
            0..0,
            "[redis] key_prefix must not hold spaces or control characters".to_string(),
        ));
    }
    bad
}
