//! The compiled form of a `Config` that a shard runs: router, per-route pipelines, upstream
//! settings and limits, with every duration and size already in the type the data path uses.

use std::net::SocketAddr;
use std::time::Duration;

use conf::{ConfErrors, Config, ForwardingConf, HostRewrite};
use policy::{Pipeline, Router};

/// One route at run time.
pub struct RouteRt {
    /// Name (messages).
    pub name: String,
    /// Stages in config order.
    pub pipeline: Pipeline,
    /// Index into `Gateway::upstreams`.
    pub upstream: Option<usize>,
}

/// One upstream at run time.
pub struct UpstreamRt {
    /// Name (messages).
    pub name: String,
    /// Target addresses.
    pub targets: Vec<SocketAddr>,
    /// Target `host:port` as written (for `host = "target"`).
    pub target_hosts: Vec<Box<[u8]>>,
    /// Host header policy.
    pub host: HostRewrite,
    /// Max idle pooled connections per target per shard.
    pub keepalive: usize,
    /// Pooled connection lifetime.
    pub idle_timeout: Duration,
    /// Connect deadline.
    pub connect_timeout: Duration,
    /// Response head deadline and body idle limit.
    pub response_timeout: Duration,
}

/// Server-wide settings in data-path form.
pub struct Settings {
    /// Parser limits for requests.
    pub limits: proto::Limits,
    /// Parser limits for responses.
    pub response_limits: proto::Limits,
    /// Client read buffer capacity.
    pub client_buffer: usize,
    /// Upstream read buffer capacity.
    pub upstream_buffer: usize,
    /// TCP_NODELAY on both sides.
    pub tcp_nodelay: bool,
    /// Head deadline.
    pub client_head_timeout: Duration,
    /// Body idle limit (also for writes to a slow client).
    pub client_body_timeout: Duration,
    /// Keep-alive idle limit.
    pub keepalive_timeout: Duration,
    /// Requests per connection (0: unlimited).
    pub keepalive_requests: u32,
    /// Largest request body (`u64::MAX`: no limit).
    pub max_body: u64,
    /// Most open client connections per shard.
    pub max_connections: usize,
    /// Added headers.
    pub forwarding: ForwardingConf,
    /// Normalise paths before routing.
    pub normalize_path: bool,
}

/// Everything a shard needs to serve, built from a `Config` once per shard.
pub struct Gateway {
    /// Routing trie.
    pub router: Router,
    /// Routes, indexed by `RouteId`.
    pub routes: Vec<RouteRt>,
    /// Upstreams.
    pub upstreams: Vec<UpstreamRt>,
    /// Settings.
    pub settings: Settings,
}

impl Gateway {
    /// Compiles `config`; every route and stage problem is reported with its location.
    pub fn build(config: &Config) -> Result<Gateway, ConfErrors> {
        let router = Router::build(config);
        let pipelines = Pipeline::build_all(config, crate::shard::placement(config).len());
        let (router, pipelines) = match (router, pipelines) {
            (Ok(r), Ok(p)) => (r, p),
            (r, p) => {
                let mut all = Vec::new();
                if let Err(e) = r {
                    all.extend(e.0);
                }
                if let Err(e) = p {
                    all.extend(e.0);
                }
                all.sort_by_key(|e| (e.line, e.col));
                return Err(ConfErrors(all));
            }
        };
        let routes = config
            .routes
            .iter()
            .zip(pipelines)
            .map(|(r, pipeline)| RouteRt {
                name: r.name.clone(),
                pipeline,
                upstream: r.upstream,
            })
            .collect();
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| UpstreamRt {
                name: u.name.clone(),
                targets: u.targets.clone(),
                target_hosts: u.target_names.iter().map(|t| t.as_bytes().into()).collect(),
                host: u.conf.host.clone(),
                keepalive: u.conf.keepalive as usize,
                idle_timeout: u.conf.idle_timeout.0,
                connect_timeout: u.conf.connect_timeout.0,
                response_timeout: u.conf.response_timeout.0,
            })
            .collect();
        let s = &config.server;
        let settings = Settings {
            limits: proto::Limits {
                max_request_line: s.max_request_line.as_usize(),
                max_head: s.max_head.as_usize(),
                max_fields: s.max_headers as usize,
            },
            response_limits: proto::Limits {
                max_request_line: s.upstream_buffer.as_usize(),
                max_head: s.upstream_buffer.as_usize(),
                max_fields: 256,
            },
            client_buffer: s.client_buffer.as_usize(),
            upstream_buffer: s.upstream_buffer.as_usize(),
            tcp_nodelay: s.tcp_nodelay,
            client_head_timeout: s.client_head_timeout.0,
            client_body_timeout: s.client_body_timeout.0,
            keepalive_timeout: s.keepalive_timeout.0,
            keepalive_requests: s.keepalive_requests,
            max_body: s.max_body.map_or(u64::MAX, |b| b.0),
            max_connections: s.max_connections as usize,
            forwarding: s.forwarding.clone(),
            normalize_path: s.normalize_path,
        };
        Ok(Gateway {
            router,
            routes,
            upstreams,
            settings,
        })
    }

    /// A human-readable list of the compiled routes (for `--check`).
    pub fn describe(config: &Config) -> String {
        let kinds = |tables: &[toml::Spanned<toml::Table>]| -> Vec<String> {
            tables
                .iter()
                .filter_map(|t| {
                    t.get_ref()
                        .get("kind")
                        .and_then(|k| k.as_str())
                        .map(str::to_string)
                })
                .collect()
        };
        let mut out = String::new();
        let global = kinds(&config.policy);
        if !global.is_empty() {
            out += &format!("  every route first: {}\n", global.join(" → "));
        }
        for r in &config.routes {
            let methods = r.methods.as_ref().map_or("*".to_string(), |m| m.join("|"));
            let host = r.host.as_deref().unwrap_or("*");
            let to = match r.upstream.and_then(|i| config.upstreams.get(i)) {
                Some(u) => {
                    let t: Vec<String> = u.targets.iter().map(|a| a.to_string()).collect();
                    format!("upstream `{}` [{}]", u.name, t.join(", "))
                }
                None => "(answered by its stages)".to_string(),
            };
            let stages = kinds(&r.policy);
            let stages = if stages.is_empty() {
                String::new()
            } else {
                format!(" stages: {}", stages.join(" → "))
            };
            out += &format!(
                "  {:<16} {:<8} {host}{} → {to}{stages}\n",
                r.name, methods, r.path
            );
        }
        out
    }
}
