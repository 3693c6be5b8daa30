//! The TOML model (serde structs mirroring the sections, `deny_unknown_fields`) and the
//! validated `Config` the rest of shardgate sees. Defaults live in one `impl Default` each.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use toml::Spanned;

use crate::route_traffic::{MirrorConf, RouteTimeouts, RouteTraffic, SplitConf, WhenConf};
use crate::tls::{ListenerConf, TlsConf, UpstreamTlsConf};
use crate::traffic::{
    BalanceConf, BreakerConf, HashOn, HealthConf, OutlierConf, RetryConf, TargetConf,
};
use crate::values::{ByteSize, Duration};

/// The whole file as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileModel {
    /// `[server]`: listeners, shards, buffers, limits, timeouts.
    #[serde(default)]
    pub server: ServerConf,
    /// `[[listener]]`: listeners with settings of their own (TLS, an HTTPS redirect).
    #[serde(default)]
    pub listener: Vec<ListenerConf>,
    /// `[[upstream]]`: named groups of targets.
    #[serde(default)]
    pub upstream: Vec<UpstreamConf>,
    /// `[[route]]`: what goes where, in any order (precedence is by specificity).
    #[serde(default)]
    pub route: Vec<RouteConf>,
    /// `[[policy]]`: stages every route runs first, before its own `[[route.policy]]`.
    #[serde(default)]
    pub policy: Vec<Spanned<toml::Table>>,
    /// `[admin]`: the admin listener (none when absent).
    #[serde(default)]
    pub admin: Option<crate::admin::AdminConf>,
    /// `[request_id]`: an id per request (on by default).
    #[serde(default)]
    pub request_id: crate::observe::RequestIdConf,
    /// `[tracing]`: W3C trace context (on by default).
    #[serde(default)]
    pub tracing: crate::observe::TracingConf,
    /// `[access_log]`: one line per exchange (none when absent).
    #[serde(default)]
    pub access_log: Option<crate::observe::AccessLogConf>,
    /// `[redis]`: the store global rate limits lease from (none when absent).
    #[serde(default)]
    pub redis: Option<Spanned<crate::redis::RedisConf>>,
    /// `[management]`: the catalogue of tenants, APIs, consumers and subscriptions (none
    /// when absent).
    #[serde(default)]
    pub management: Option<Spanned<crate::management::ManagementConf>>,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConf {
    /// Addresses to listen on, `"ip:port"`; port 0 picks a free port (shared by all shards).
    pub listen: Vec<Spanned<String>>,
    /// Number of shards (threads): `"auto"` (one per CPU this process may run on) or a count.
    pub shards: Shards,
    /// Pin each shard to a CPU: `true` (shard i on the i-th allowed CPU), `false`, or a list.
    pub pin: Pin,
    /// IO driver: `"auto"` (io_uring, else epoll with a log line), `"io_uring"` or `"epoll"`.
    pub driver: Driver,
    /// Listen backlog per shard's socket.
    pub backlog: u32,
    /// Most open client connections per shard; beyond it a new connection gets 503 and is
    /// closed (keeps a flood from exhausting file descriptors and memory).
    pub max_connections: u32,
    /// Set TCP_NODELAY on client and upstream sockets.
    pub tcp_nodelay: bool,
    /// Normalise request paths before routing (decode unreserved escapes, remove dot
    /// segments; refuse encoded `/`, `\`, NUL and climbs above the root with 400), and
    /// forward the normalised path.
    pub normalize_path: bool,
    /// Read buffer per client connection; a request head must fit in it.
    pub client_buffer: ByteSize,
    /// Read buffer per upstream exchange (response heads must fit in it).
    pub upstream_buffer: ByteSize,
    /// Longest request-line accepted (414 beyond).
    pub max_request_line: ByteSize,
    /// Largest request head accepted (431 beyond); at most `client_buffer`.
    pub max_head: ByteSize,
    /// Most header fields in a request (431 beyond).
    pub max_headers: u32,
    /// Largest request body accepted (413 beyond, checked while streaming); absent: no limit.
    pub max_body: Option<ByteSize>,
    /// Time allowed to receive a whole request head (408 beyond).
    pub client_head_timeout: Duration,
    /// Longest pause while receiving a request body (408 beyond).
    pub client_body_timeout: Duration,
    /// How long an idle keep-alive client connection is kept.
    pub keepalive_timeout: Duration,
    /// Most requests served on one client connection before it is closed (0: no limit).
    pub keepalive_requests: u32,
    /// On SIGTERM/SIGINT: how long in-flight requests may take before the process exits.
    pub drain_timeout: Duration,
    /// How long an upgraded connection (WebSocket) may carry nothing either way.
    pub tunnel_idle_timeout: Duration,
    /// Request headers the gateway adds.
    pub forwarding: ForwardingConf,
    /// HTTP/2 with clients: settings and attack bounds.
    pub http2: crate::http2::Http2Conf,
}

impl Default for ServerConf {
    fn default() -> ServerConf {
        ServerConf {
            listen: vec![Spanned::new(0..0, "127.0.0.1:8080".to_string())],
            shards: Shards::Auto,
            pin: Pin::All(true),
            driver: Driver::Auto,
            backlog: 1024,
            max_connections: 10_000,
            tcp_nodelay: true,
            normalize_path: true,
            client_buffer: ByteSize(32 * 1024),
            upstream_buffer: ByteSize(32 * 1024),
            max_request_line: ByteSize(8 * 1024),
            max_head: ByteSize(32 * 1024),
            max_headers: 100,
            max_body: None,
            client_head_timeout: Duration::secs(10),
            client_body_timeout: Duration::secs(30),
            keepalive_timeout: Duration::secs(60),
            keepalive_requests: 0,
            drain_timeout: Duration::secs(30),
            tunnel_idle_timeout: Duration::secs(300),
            forwarding: ForwardingConf::default(),
            http2: crate::http2::Http2Conf::default(),
        }
    }
}

/// `[server.forwarding]`: headers added to forwarded requests (and Via to responses).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardingConf {
    /// Append the client address to `X-Forwarded-For`.
    pub x_forwarded_for: bool,
    /// Set `X-Forwarded-Proto` to the client-side scheme.
    pub x_forwarded_proto: bool,
    /// Set `X-Forwarded-Host` to the Host the client asked for.
    pub x_forwarded_host: bool,
    /// Append `1.1 shardgate` to `Via`, both ways (RFC 9110 §7.6.3).
    pub via: bool,
}

impl Default for ForwardingConf {
    fn default() -> ForwardingConf {
        ForwardingConf {
            x_forwarded_for: true,
            x_forwarded_proto: true,
            x_forwarded_host: true,
            via: true,
        }
    }
}

/// `[[upstream]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConf {
    /// Name that routes refer to.
    pub name: Spanned<String>,
    /// Targets: `"host:port"` or `{ address = "host:port", weight = N }` (none with
    /// `[upstream.discovery] kind = "file"`).
    #[serde(default)]
    pub targets: Vec<Spanned<TargetConf>>,
    /// How a target is picked: `"p2c"` (default), `"round_robin"`, `"weighted_round_robin"`,
    /// `"least_outstanding"`, `"ring_hash"`, `"maglev"` or `"ip_hash"`.
    #[serde(default = "defaults::balance")]
    pub balance: Spanned<BalanceConf>,
    /// What `ring_hash` and `maglev` hash: `client_ip`, `header:NAME`, `cookie:NAME` or
    /// `param:NAME`.
    #[serde(default)]
    pub hash_on: Option<Spanned<HashOn>>,
    /// Bounded load of the hashing balancers: a target takes at most this factor times the
    /// group's average requests in flight before its keys spill to the next one.
    #[serde(default = "defaults::hash_load_bound")]
    pub hash_load_bound: Spanned<f64>,
    /// Most idle keep-alive connections kept per target per shard (0: no pooling).
    #[serde(default = "defaults::keepalive")]
    pub keepalive: u32,
    /// How long an idle pooled connection may be reused.
    #[serde(default = "defaults::idle_timeout")]
    pub idle_timeout: Duration,
    /// Time allowed to connect (504 beyond).
    #[serde(default = "defaults::connect_timeout")]
    pub connect_timeout: Duration,
    /// Time allowed for the response head, and longest pause in the response body (504).
    #[serde(default = "defaults::response_timeout")]
    pub response_timeout: Duration,
    /// Host header sent upstream: `"preserve"` (the client's), `"target"` (the target's
    /// host:port), or any other string, sent as is.
    #[serde(default)]
    pub host: HostRewrite,
    /// `[upstream.tls]`: connect to the targets over TLS.
    #[serde(default)]
    pub tls: Option<UpstreamTlsConf>,
    /// What the targets speak: `"http1"`, `"h2c"` (HTTP/2 in the clear, prior knowledge) or
    /// `"h2"` (HTTP/2 over `[upstream.tls]`, ALPN `h2`).
    #[serde(default)]
    pub protocol: Option<Spanned<UpstreamProtocol>>,
    /// With HTTP/2: most connections per target per shard; streams go on the least busy.
    #[serde(default = "defaults::h2_connections")]
    pub h2_connections: u32,
    /// With HTTP/2: most streams in flight on one connection (the target's own limit also
    /// holds).
    #[serde(default = "defaults::h2_streams")]
    pub h2_streams: u32,
    /// `[upstream.health]`: active health checks (none when absent).
    #[serde(default)]
    pub health: Option<Spanned<HealthConf>>,
    /// `[upstream.outlier]`: passive health (on by default).
    #[serde(default)]
    pub outlier: Option<Spanned<OutlierConf>>,
    /// `[upstream.retry]`: retries to another target (one retry by default).
    #[serde(default)]
    pub retry: Option<Spanned<RetryConf>>,
    /// `[upstream.breaker]`: a circuit breaker per target (none when absent).
    #[serde(default)]
    pub breaker: Option<Spanned<BreakerConf>>,
    /// `[upstream.discovery]`: targets from DNS or a watched file (fixed when absent).
    #[serde(default)]
    pub discovery: Option<Spanned<crate::discovery::DiscoveryConf>>,
}

impl UpstreamConf {
    /// What the targets speak (`http1` when not written).
    pub fn protocol(&self) -> UpstreamProtocol {
        self.protocol
            .as_ref()
            .map(|p| *p.get_ref())
            .unwrap_or_default()
    }
}

/// What an upstream's targets speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1, connections pooled for keep-alive.
    #[default]
    Http1,
    /// HTTP/2 over plain TCP (prior knowledge), streams multiplexed.
    H2c,
    /// HTTP/2 over TLS (ALPN `h2`), streams multiplexed.
    H2,
}

mod defaults {
    use crate::values::Duration;
    pub fn h2_connections() -> u32 {
        2
    }
    pub fn h2_streams() -> u32 {
        100
    }
    pub fn keepalive() -> u32 {
        64
    }
    pub fn idle_timeout() -> Duration {
        Duration::secs(30)
    }
    pub fn connect_timeout() -> Duration {
        Duration::secs(3)
    }
    pub fn response_timeout() -> Duration {
        Duration::secs(30)
    }
    pub fn yes() -> bool {
        true
    }
    pub fn balance() -> toml::Spanned<crate::traffic::BalanceConf> {
        toml::Spanned::new(0..0, crate::traffic::BalanceConf::default())
    }
    pub fn hash_load_bound() -> toml::Spanned<f64> {
        toml::Spanned::new(0..0, 1.25)
    }
    pub fn route_path() -> toml::Spanned<String> {
        toml::Spanned::new(0..0, "/{*rest}".to_string())
    }
}

/// `[[route]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConf {
    /// Name used in messages and metrics (default `route[N]`).
    #[serde(default)]
    pub name: Option<String>,
    /// Host to match: exact (`api.example.com`) or a wildcard (`*.example.com`); any if absent.
    #[serde(default)]
    pub host: Option<Spanned<String>>,
    /// Path pattern: static segments, `{name}` captures a segment, a final `{*name}` the rest.
    #[serde(default = "defaults::route_path")]
    pub path: Spanned<String>,
    /// Methods to match (any if absent).
    #[serde(default)]
    pub methods: Option<Spanned<Vec<String>>>,
    /// The `[[upstream]]` to forward to.
    #[serde(default)]
    pub upstream: Option<Spanned<String>>,
    /// `[[route.policy]]` stages, in order; each table has a `kind` and that stage's fields.
    #[serde(default)]
    pub policy: Vec<Spanned<toml::Table>>,
    /// `[route.timeouts]`: connect, first byte, idle and total deadlines for this route.
    #[serde(default)]
    pub timeouts: Option<Spanned<RouteTimeouts>>,
    /// `[[route.split]]`: weighted upstream groups instead of one `upstream` (canary, A/B).
    #[serde(default)]
    pub split: Vec<SplitConf>,
    /// What keeps a client on one side of the split: `client_ip`, `header:NAME`,
    /// `cookie:NAME` (absent: each request drawn by weight).
    #[serde(default)]
    pub split_on: Option<Spanned<HashOn>>,
    /// `[[route.when]]`: requests with a header or cookie go to another group.
    #[serde(default)]
    pub when: Vec<Spanned<WhenConf>>,
    /// `[route.mirror]`: copy a share of requests to a shadow group.
    #[serde(default)]
    pub mirror: Option<Spanned<MirrorConf>>,
    /// Forward `Upgrade` requests (WebSocket) and tunnel the connection after `101`.
    #[serde(default = "defaults::yes")]
    pub websocket: bool,
    /// Tunnel CONNECT requests to this route's upstream (refused, 501, everywhere else).
    #[serde(default)]
    pub connect: bool,
    /// `[route.aggregate]`: answer with several upstream calls composed into one JSON
    /// object (instead of `upstream`).
    #[serde(default)]
    pub aggregate: Option<Spanned<crate::aggregate::AggregateConf>>,
}

/// Shard count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shards {
    /// One per CPU the process may run on.
    Auto,
    /// Exactly this many (≥ 1).
    Count(u16),
}

/// CPU pinning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// `true`: shard i on the i-th allowed CPU; `false`: no pinning.
    All(bool),
    /// Shard i on `cpus[i % len]`.
    Cpus(Vec<usize>),
}

/// IO driver choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Driver {
    /// io_uring where the kernel allows it, else epoll (logged).
    Auto,
    /// io_uring only (startup fails without it).
    IoUring,
    /// epoll only.
    Epoll,
}

/// The Host header policy of an upstream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HostRewrite {
    /// Forward the client's Host.
    #[default]
    Preserve,
    /// Use the chosen target's `host:port`.
    Target,
    /// Use this value.
    Fixed(String),
}

impl<'de> Deserialize<'de> for HostRewrite {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "preserve" => HostRewrite::Preserve,
            "target" => HostRewrite::Target,
            _ => HostRewrite::Fixed(s),
        })
    }
}

impl<'de> Deserialize<'de> for Shards {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Shards;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"auto\" or a shard count from 1 to 1024")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Shards, E> {
                if v == "auto" {
                    Ok(Shards::Auto)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Shards, E> {
                match u16::try_from(v) {
                    Ok(n @ 1..=1024) => Ok(Shards::Count(n)),
                    _ => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Pin {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pin;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, or a non-empty list of CPU numbers")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Pin, E> {
                Ok(Pin::All(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Pin, A::Error> {
                let mut cpus = Vec::new();
                while let Some(c) = seq.next_element::<usize>()? {
                    cpus.push(c);
                }
                if cpus.is_empty() {
                    return Err(de::Error::invalid_length(0, &self));
                }
                Ok(Pin::Cpus(cpus))
            }
        }
        d.deserialize_any(V)
    }
}

/// A validated configuration: addresses resolved, names cross-referenced, limits consistent.
#[derive(Debug, Clone)]
pub struct Config {
    /// File name the configuration came from (for messages).
    pub source: String,
    /// Its text (for locating errors found later, e.g. by policy stages).
    pub text: String,
    /// `[server]` as written (all values valid).
    pub server: ServerConf,
    /// Resolved listen addresses, every listener's (`[server] listen` first).
    pub listen: Vec<SocketAddr>,
    /// Every listener with its settings, in the order of `listen`.
    pub listeners: Vec<Listener>,
    /// Upstreams, in file order.
    pub upstreams: Vec<Upstream>,
    /// Routes, in file order.
    pub routes: Vec<Route>,
    /// Global `[[policy]]` stage tables, run before each route's own.
    pub policy: Vec<Spanned<toml::Table>>,
    /// The admin listener's address and token, when there is one.
    pub admin: Option<(SocketAddr, String)>,
    /// `[request_id]` as written.
    pub request_id: crate::observe::RequestIdConf,
    /// `[tracing]` as written.
    pub tracing: crate::observe::TracingConf,
    /// `[access_log]` as written, when present.
    pub access_log: Option<crate::observe::AccessLogConf>,
    /// `[redis]` as written, when present.
    pub redis: Option<crate::redis::RedisConf>,
    /// `[management]` as written, when present.
    pub management: Option<crate::management::ManagementConf>,
}

impl Config {
    /// The directory relative paths in it (keys, certificates, targets files) are read from:
    /// the config file's.
    pub fn dir(&self) -> &std::path::Path {
        std::path::Path::new(&self.source)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."))
    }
}

/// A validated listener.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Its address.
    pub addr: SocketAddr,
    /// TLS termination, as written.
    pub tls: Option<Spanned<TlsConf>>,
    /// Answer every request with a redirect to `https` on this port.
    pub redirect_https: Option<u16>,
    /// Accept HTTP/2 with prior knowledge (h2c) besides HTTP/1.1 (plain listeners).
    pub h2c: bool,
    /// Where it is written.
    pub span: Range<usize>,
}

/// A validated `[[upstream]]`.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Its name.
    pub name: String,
    /// Resolved targets.
    pub targets: Vec<SocketAddr>,
    /// The targets as written (used for `host = "target"`).
    pub target_names: Vec<String>,
    /// Their weights.
    pub weights: Vec<u32>,
    /// Settings as written.
    pub conf: UpstreamConf,
}

/// A validated `[[route]]`.
#[derive(Debug, Clone)]
pub struct Route {
    /// Name (given, or `route[N]`).
    pub name: String,
    /// Host pattern, lower-cased.
    pub host: Option<String>,
    /// Path pattern.
    pub path: String,
    /// Methods (upper-case tokens), or any.
    pub methods: Option<Vec<String>>,
    /// Index into `Config::upstreams`.
    pub upstream: Option<usize>,
    /// Timeouts, split, matched groups and mirror.
    pub traffic: RouteTraffic,
    /// Upgrades (WebSocket) are forwarded.
    pub websocket: bool,
    /// CONNECT requests are tunnelled to the upstream.
    pub connect: bool,
    /// Policy stage tables, in order.
    pub policy: Vec<Spanned<toml::Table>>,
    /// Calls composed into the answer (a route with it has no upstream).
    pub aggregate: Option<crate::aggregate::Aggregate>,
    /// Where the route's path is written (or its table, for a default path).
    pub span: Range<usize>,
}
