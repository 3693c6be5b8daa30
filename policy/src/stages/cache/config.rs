//! The `cache` stage's configuration: its fields, and what they compile to (the key
//! specification, the TTL override in seconds, the eviction policy), checked here.

use serde::Deserialize;

use crate::cache::key::{KeySpec, QueryKey};
use crate::cache::store::Eviction;

/// `[[route.policy]] kind = "cache"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Bytes of stored responses per shard (keys, heads and bodies). Default "64MiB".
    #[serde(default = "default_size")]
    pub size: conf::ByteSize,
    /// Largest body stored; larger ones stream through uncached. Default "8MiB".
    #[serde(default = "default_max_object")]
    pub max_object: conf::ByteSize,
    /// "s3fifo" or "lru". Default "s3fifo".
    #[serde(default)]
    pub eviction: EvictionName,
    /// A freshness lifetime for every storable response, instead of what it says.
    #[serde(default)]
    pub ttl: Option<conf::Duration>,
    /// What of the query keys an object: "as-is", "sorted" or "ignore". Default "as-is".
    #[serde(default)]
    pub query: QueryName,
    /// Query parameters left out of the key (the rest sorted).
    #[serde(default)]
    pub query_exclude: Vec<String>,
    /// Only these query parameters key an object (sorted).
    #[serde(default)]
    pub query_include: Vec<String>,
    /// Request fields whose values join the key.
    #[serde(default)]
    pub key_headers: Vec<String>,
    /// Store responses that set cookies. Default false.
    #[serde(default)]
    pub store_set_cookie: bool,
    /// Concurrent misses for one URL on a shard wait for the first one's response instead of
    /// each going upstream. Default true.
    #[serde(default = "yes")]
    pub coalesce: bool,
    /// The longest a coalesced miss waits before it goes upstream itself (and, shared, the
    /// longest a lookup waits for the owner's answer). Default "5s".
    #[serde(default = "five_seconds")]
    pub coalesce_wait: conf::Duration,
    /// One copy per gateway: each key has an owner shard (a hash of the key) that stores
    /// it; the other shards ask it by message, and misses coalesce across shards. `size` is
    /// still per shard. Default false.
    #[serde(default)]
    pub shared: bool,
}

fn yes() -> bool {
    true
}
fn five_seconds() -> conf::Duration {
    conf::Duration(std::time::Duration::from_secs(5))
}

/// `eviction = "…"`
#[derive(Debug, Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum EvictionName {
    /// S3-FIFO.
    #[default]
    S3fifo,
    /// Least recently used.
    Lru,
}

/// `query = "…"`
#[derive(Debug, Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
pub enum QueryName {
    /// As received.
    #[default]
    AsIs,
    /// Parameters sorted.
    Sorted,
    /// Left out.
    Ignore,
}

fn default_size() -> conf::ByteSize {
    conf::ByteSize(64 << 20)
}
fn default_max_object() -> conf::ByteSize {
    conf::ByteSize(8 << 20)
}

/// What the fields compile to.
pub struct Compiled {
    /// How keys are built.
    pub spec: KeySpec,
    /// The route's freshness lifetime, in seconds.
    pub ttl: Option<u32>,
    /// The eviction policy.
    pub eviction: Eviction,
}

impl Config {
    /// Checks the fields serde cannot, and compiles them.
    pub fn compile(&self) -> Result<Compiled, String> {
        let c = self;
        let lower =
            |v: &[String]| -> Vec<Vec<u8>> { v.iter().map(|s| s.as_bytes().to_vec()).collect() };
        let query = match (
            c.query,
            c.query_exclude.is_empty(),
            c.query_include.is_empty(),
        ) {
            (_, false, false) => {
                return Err("`query_exclude` and `query_include` exclude each other".into());
            }
            (QueryName::Ignore, false, _) | (QueryName::Ignore, _, false) => {
                return Err("`query = \"ignore\"` keys no parameters: drop `query_exclude` / `query_include`".into());
            }
            (_, false, true) => QueryKey::Without(lower(&c.query_exclude)),
            (_, true, false) => QueryKey::Only(lower(&c.query_include)),
            (QueryName::AsIs, true, true) => QueryKey::AsIs,
            (QueryName::Sorted, true, true) => QueryKey::Sorted,
            (QueryName::Ignore, true, true) => QueryKey::Ignored,
        };
        let mut fields = Vec::new();
        for h in &c.key_headers {
            if h.is_empty() || !h.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                return Err(format!("`key_headers`: `{h}` is not a field name"));
            }
            fields.push(h.to_ascii_lowercase().into_bytes());
        }
        if c.size.0 == 0 {
            return Err("`size` must be above 0".into());
        }
        if c.shared && c.coalesce_wait.0.is_zero() {
            return Err("`shared` needs `coalesce_wait` above 0: it is also how long a lookup waits for the owning shard".into());
        }
        if c.max_object.0 > c.size.0 {
            return Err("`max_object` is larger than `size`: no such object could be kept".into());
        }
        let ttl = match c.ttl {
            None => None,
            Some(d) => Some(u32::try_from(d.0.as_secs()).map_err(|_| "`ttl` is too long")?),
        };
        let eviction = match c.eviction {
            EvictionName::S3fifo => Eviction::S3Fifo,
            EvictionName::Lru => Eviction::Lru,
        };
        Ok(Compiled {
            spec: KeySpec { query, fields },
            ttl,
            eviction,
        })
    }
}
