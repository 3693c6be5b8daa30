//! The compiled form of a `Config` that a shard runs: router, per-route pipelines, upstream
//! groups with their pools and selectors, and limits, every value in its data-path type.
//!
//! # Invariants
//! A shard builds its own `Gateway` (stage and pool state are shard-local). Rebuilt for a new
//! config, it takes over the pools of upstreams whose definition did not change and the stage
//! state of stage lists that did not change (`build`'s `previous`).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use conf::{ConfErrors, Config, ForwardingConf, HostRewrite};
use policy::{Pipeline, Pipelines, Router};

use crate::tls::tickets::TicketSecret;
use crate::tls::{TlsListener, UpstreamTls};
use crate::upstream::pool::Pool;
use crate::upstream::select::{SelectConf, Selector};

/// One route at run time.
pub struct RouteRt {
    /// Name (messages).
    pub name: String,
    /// The name again, shared (call analytics count under it without copying it).
    pub key: Rc<str>,
    /// Stages in config order (global ones first).
    pub pipeline: Pipeline,
    /// Index into `Gateway::upstreams`.
    pub upstream: Option<usize>,
    /// The capture its upstream hashes on (`hash_on = "param:NAME"`), by index.
    pub hash_param: Option<usize>,
    /// Which group a request goes to (matched, split, or `upstream`), and what is mirrored.
    pub choice: crate::upstream::route_choice::GroupChoice,
    /// Its timeouts as written (each over its group's).
    pub timeouts: conf::route_traffic::RouteTimeouts,
    /// Upgrades (WebSocket) are forwarded.
    pub websocket: bool,
    /// CONNECT is tunnelled to the upstream.
    pub connect: bool,
    /// Its responses and latencies on this shard (taken over by a route of the same name).
    pub stats: Rc<crate::stats::RouteStats>,
    /// Calls composed into its answer (`[route.aggregate]`), instead of an upstream.
    pub aggregate: Option<Rc<crate::aggregate_plan::Plan>>,
}

/// The deadlines of one exchange upstream: the route's where it sets them, else its
/// upstream's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting.
    pub connect: Duration,
    /// From the request sent to the response head.
    pub first_byte: Duration,
    /// Longest pause between body bytes (and writing the request).
    pub idle: Duration,
    /// The whole exchange, retries included.
    pub total: Option<Duration>,
}

impl Timeouts {
    /// `route`'s timeouts over `up`'s.
    pub fn of(up: &UpstreamRt, route: &conf::route_traffic::RouteTimeouts) -> Timeouts {
        Timeouts {
            connect: route.connect.map_or(up.connect_timeout, |d| d.0),
            first_byte: route.first_byte.map_or(up.response_timeout, |d| d.0),
            idle: route.idle.map_or(up.response_timeout, |d| d.0),
            total: route.total.map(|d| d.0),
        }
    }
}

/// One target of an upstream group.
pub struct TargetRt {
    /// Where to connect.
    pub addr: SocketAddr,
    /// `host:port` as written (for `host = "target"`).
    pub host: Box<[u8]>,
    /// The name TLS sends as SNI and verifies (the upstream's `server_name`, else the host).
    pub tls_name: Option<rustls::pki_types::ServerName<'static>>,
}

/// What a listener does with its connections.
pub enum ListenerKind {
    /// Plain HTTP.
    Plain,
    /// Plain HTTP answered with a redirect to `https` on this port.
    Redirect(u16),
    /// TLS, then HTTP.
    Tls(TlsListener),
}

/// One listener at run time (indexed like `Config::listeners` and the bound sockets).
pub struct ListenerRt {
    /// Which listener it is (its address as configured, and which of those with it).
    pub id: crate::listener::ListenerId,
    /// What it does.
    pub kind: ListenerKind,
    /// A plain listener that also takes HTTP/2 with prior knowledge.
    pub h2c: bool,
}

impl ListenerRt {
    /// `"http"`, `"https"`, or `"redirect"` (plain HTTP sent to HTTPS).
    pub fn scheme(&self) -> &'static str {
        match self.kind {
            ListenerKind::Plain => "http",
            ListenerKind::Redirect(_) => "redirect",
            ListenerKind::Tls(_) => "https",
        }
    }
}

/// What identifies an upstream's pool across configs: same name, same targets, same pool
/// settings means the idle connections can be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PoolKey {
    name: String,
    targets: Vec<SocketAddr>,
    keepalive: usize,
    idle_timeout: Duration,
    /// The TLS settings (CA, server name, client certificate and key), as written.
    tls: Option<[Option<String>; 4]>,
}

impl PoolKey {
    /// The same settings, whatever the targets.
    fn same_but_targets(&self, other: &PoolKey) -> bool {
        self.name == other.name
            && self.keepalive == other.keepalive
            && self.idle_timeout == other.idle_timeout
            && self.tls == other.tls
    }
}

/// What identifies an upstream's target state across configs (load, verdicts, ejections):
/// the pool's key and every traffic setting.
#[derive(Debug, Clone, PartialEq)]
struct SelectKey {
    pool: PoolKey,
    weights: Vec<u32>,
    balance: conf::BalanceConf,
    hash_on: Option<conf::HashOn>,
    hash_load_bound: f64,
    health: Option<conf::HealthConf>,
    outlier: Option<conf::OutlierConf>,
    retry: Option<conf::RetryConf>,
    breaker: Option<conf::BreakerConf>,
}

/// One upstream group at run time.
pub struct UpstreamRt {
    /// Name (messages).
    pub name: String,
    /// Its targets.
    pub targets: Vec<TargetRt>,
    /// Host header policy.
    pub host: HostRewrite,
    /// Connect deadline.
    pub connect_timeout: Duration,
    /// Response head deadline and body idle limit.
    pub response_timeout: Duration,
    /// Idle keep-alive connections, per target.
    pub pool: Rc<RefCell<Pool>>,
    /// Target choice.
    pub select: Rc<Selector>,
    /// TLS to the targets (`None`: plain TCP).
    pub tls: Option<UpstreamTls>,
    /// HTTP/2 connections to the targets (`protocol = "h2c"` or `"h2"`; `None`: HTTP/1.1).
    pub mux: Option<Rc<crate::upstream::mux::Mux>>,
    key: SelectKey,
}

/// Server-wide settings in data-path form.
pub struct Settings {
    /// Parser limits for requests.
    pub limits: proto::Limits,
    /// Parser limits for responses.
    pub response_limits: proto::Limits,
    /// Parser limits for the heads the gateway itself writes (twice the others: it adds
    /// fields), read back to turn them into HTTP/2.
    pub outbound_limits: proto::Limits,
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
    /// Idle limit of an upgraded connection.
    pub tunnel_idle_timeout: Duration,
    /// HTTP/2 with clients.
    pub http2: conf::Http2Conf,
}

/// Everything a shard needs to serve, built from a `Config` once per shard.
pub struct Gateway {
    /// Listeners, in config order.
    pub listeners: Vec<ListenerRt>,
    /// Routing trie.
    pub router: Router,
    /// Routes, indexed by `RouteId`.
    pub routes: Vec<RouteRt>,
    /// The global stages alone, for requests that were never routed (parse errors, 404).
    pub unrouted: Pipeline,
    /// The record of requests that were never routed.
    pub unrouted_stats: Rc<crate::stats::RouteStats>,
    /// Upstream groups.
    pub upstreams: Vec<UpstreamRt>,
    /// Settings.
    pub settings: Settings,
    /// Request ids and trace context.
    pub stamp: crate::trace::Stamp,
    /// The access log's line format, when there is one.
    pub access_log: Option<Rc<crate::access_log::Format>>,
    /// Every pipeline (kept for the stage state a later config takes over).
    pipelines: Pipelines,
}

impl Gateway {
    /// Compiles `config` for shard `shard` of `shards`; every route, stage and TLS problem is
    /// reported with its location. `previous`: the gateway this one replaces on the shard;
    /// `secret`: the session-ticket secret all shards share.
    pub fn build(
        config: &Config,
        shards: usize,
        shard: usize,
        previous: Option<&Gateway>,
        secret: &std::sync::Arc<TicketSecret>,
    ) -> Result<Gateway, ConfErrors> {
        let router = Router::build(config);
        let pipelines = Pipelines::build(config, shards, shard, previous.map(|g| &g.pipelines));
        let mut all = Vec::new();
        let dir = config.dir();
        let at = |p: crate::tls::TlsProblem| {
            conf::ConfError::at(&config.source, &config.text, p.span, p.msg)
        };
        let mut listeners = Vec::with_capacity(config.listeners.len());
        let ids = crate::listener::ids(&config.listen);
        for (i, l) in config.listeners.iter().enumerate() {
            let name = format!("{i} {}", l.addr);
            let kind = match (&l.tls, l.redirect_https) {
                (Some(t), _) => match crate::tls::listener(t, dir, &name, secret) {
                    Ok(t) => ListenerKind::Tls(t),
                    Err(ps) => {
                        all.extend(ps.into_iter().map(at));
                        continue;
                    }
                },
                (None, Some(port)) => ListenerKind::Redirect(port),
                (None, None) => ListenerKind::Plain,
            };
            let Some(&id) = ids.get(i) else {
                continue;
            };
            listeners.push(ListenerRt {
                id,
                kind,
                h2c: l.h2c,
            });
        }
        let stamp = crate::trace::Stamp::build(config).unwrap_or_else(|(span, msg)| {
            all.push(conf::ConfError::at(&config.source, &config.text, span, msg));
            crate::trace::Stamp::default()
        });
        let access_log = config.access_log.as_ref().map(|a| {
            let f = crate::access_log::Format::new(a, dir);
            let parent = std::path::Path::new(&f.path).parent();
            if f.path != "stdout" && !parent.is_some_and(std::path::Path::is_dir) {
                let msg = format!("[access_log] path {}: its directory does not exist", f.path);
                all.push(conf::ConfError::at(
                    &config.source,
                    &config.text,
                    a.path.span(),
                    msg,
                ));
            }
            Rc::new(f)
        });
        let mut upstreams = Vec::with_capacity(config.upstreams.len());
        for u in &config.upstreams {
            match upstream(u, shard, previous, dir) {
                Ok(up) => upstreams.push(up),
                Err(ps) => all.extend(ps.into_iter().map(at)),
            }
        }
        let mut plans = Vec::with_capacity(config.routes.len());
        for r in &config.routes {
            let params = policy::router::capture_names(&r.path);
            let plan = r
                .aggregate
                .as_ref()
                .map(|a| crate::aggregate_plan::Plan::build(a, &params));
            plans.push(match plan {
                Some(Ok(p)) => Some(Rc::new(p)),
                Some(Err((span, msg))) => {
                    let msg = format!("route `{}` [route.aggregate] {msg}", r.name);
                    all.push(conf::ConfError::at(&config.source, &config.text, span, msg));
                    None
                }
                None => None,
            });
        }
        let (router, pipelines) = match (router, pipelines) {
            (Ok(r), Ok(p)) if all.is_empty() => (r, p),
            (r, p) => {
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
            .zip(&pipelines.routes)
            .zip(plans)
            .enumerate()
            .map(|(i, ((r, pipeline), aggregate))| RouteRt {
                aggregate,
                name: r.name.clone(),
                key: r.name.as_str().into(),
                pipeline: pipeline.clone(),
                upstream: r.upstream,
                hash_param: hash_param(config, &router, i),
                choice: crate::upstream::route_choice::GroupChoice::new(r.upstream, &r.traffic),
                timeouts: r.traffic.timeouts,
                websocket: r.websocket,
                connect: r.connect,
                stats: previous
                    .and_then(|g| g.routes.iter().find(|o| o.name == r.name))
                    .map(|o| o.stats.clone())
                    .unwrap_or_default(),
            })
            .collect();
        let unrouted = pipelines.global.clone();
        let unrouted_stats = previous
            .map(|g| g.unrouted_stats.clone())
            .unwrap_or_default();
        Ok(Gateway {
            listeners,
            router,
            routes,
            unrouted,
            unrouted_stats,
            upstreams,
            settings: settings(config),
            stamp,
            access_log,
            pipelines,
        })
    }

    /// The global stages' own figures (route-less), with each stage's kind.
    pub fn global_figures(&self) -> Vec<(&'static str, policy::Figure)> {
        self.pipelines.global_figures()
    }

    /// Hands a letter from shard `from` to the stage it is for.
    pub fn deliver(&self, from: usize, letter: policy::letter::Letter) {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.pipelines.deliver(from, letter, wall);
    }

    /// Drops the stored responses `what` names from every stage's cache; how many.
    pub fn purge(&self, what: &crate::control::Purge) -> u64 {
        self.pipelines.purge(what)
    }

    /// The pipeline of route `i` (the global stages when it has none).
    pub fn pipeline(&self, route: Option<usize>) -> &Pipeline {
        route
            .and_then(|i| self.routes.get(i))
            .map_or(&self.unrouted, |r| &r.pipeline)
    }

    /// The listener `id` (a reload may have removed it).
    #[inline]
    pub fn listener(&self, id: crate::listener::ListenerId) -> Option<&ListenerRt> {
        self.listeners.iter().find(|l| l.id == id)
    }

    /// The record of route `i` (that of unrouted requests when there is none).
    pub fn route_stats(&self, route: Option<usize>) -> &crate::stats::RouteStats {
        route
            .and_then(|i| self.routes.get(i))
            .map_or(&self.unrouted_stats, |r| &r.stats)
    }

    /// Background tasks of every stage, each once.
    pub fn tasks(&self) -> Vec<Rc<dyn policy::task::Task>> {
        let mut all = self.unrouted.tasks();
        for r in &self.routes {
            for t in r.pipeline.tasks() {
                if !all.iter().any(|u| Rc::ptr_eq(u, &t)) {
                    all.push(t);
                }
            }
        }
        all
    }

    /// True when this gateway kept the pool of upstream `i` from `previous`.
    pub fn kept_pool(&self, previous: &Gateway, i: usize) -> bool {
        match (self.upstreams.get(i), previous.upstreams.get(i)) {
            (Some(a), Some(b)) => Rc::ptr_eq(&a.pool, &b.pool),
            _ => false,
        }
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
            let name = |i: usize| config.upstreams.get(i).map_or("?", |u| u.name.as_str());
            let to = match r.upstream.and_then(|i| config.upstreams.get(i)) {
                Some(u) => {
                    let t: Vec<String> = u.targets.iter().map(|a| a.to_string()).collect();
                    format!("upstream `{}` [{}]", u.name, t.join(", "))
                }
                None if !r.traffic.split.is_empty() => {
                    let parts: Vec<String> = r
                        .traffic
                        .split
                        .iter()
                        .map(|&(i, w)| format!("`{}` {w}", name(i)))
                        .collect();
                    format!("split [{}]", parts.join(", "))
                }
                None => match &r.aggregate {
                    Some(a) => {
                        let calls: Vec<String> = a
                            .calls
                            .iter()
                            .map(|c| match c.depends_on.and_then(|d| a.calls.get(d)) {
                                Some(d) => {
                                    format!("{} → `{}` after {}", c.name, name(c.upstream), d.name)
                                }
                                None => format!("{} → `{}`", c.name, name(c.upstream)),
                            })
                            .collect();
                        format!("aggregate [{}]", calls.join(", "))
                    }
                    None => "(answered by its stages)".to_string(),
                },
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

/// The index of the capture route `i`'s upstream hashes on, if it hashes on one.
fn hash_param(config: &Config, router: &Router, i: usize) -> Option<usize> {
    let r = config.routes.get(i)?;
    let u = config.upstreams.get(r.upstream?)?;
    if !u.conf.balance.get_ref().hashes() {
        return None;
    }
    let conf::HashOn::Param(name) = u.conf.hash_on.as_ref()?.get_ref() else {
        return None;
    };
    router
        .param_names(policy::RouteId(i as u32))
        .iter()
        .position(|n| n == name)
}

/// One upstream group, taking over the pool and selector of the previous config's group
/// with the same definition.
fn upstream(
    u: &conf::model::Upstream,
    shard: usize,
    previous: Option<&Gateway>,
    dir: &std::path::Path,
) -> Result<UpstreamRt, Vec<crate::tls::TlsProblem>> {
    let tls = match &u.conf.tls {
        Some(t) => Some(crate::tls::upstream(t, dir, u.conf.name.span())?),
        None => None,
    };
    let h2 = u.conf.protocol() != conf::UpstreamProtocol::Http1;
    let tls = tls.map(|t| if h2 { t.offering(b"h2") } else { t });
    let mux = h2.then(|| {
        let (conns, streams) = (u.conf.h2_connections, u.conf.h2_streams);
        Rc::new(crate::upstream::mux::Mux::new(
            u.targets.len(),
            conns,
            streams,
        ))
    });
    let written = |v: &Option<toml::Spanned<String>>| v.as_ref().map(|s| s.get_ref().clone());
    let key = PoolKey {
        tls: u.conf.tls.as_ref().map(|t| {
            [
                written(&t.ca),
                written(&t.server_name),
                written(&t.client_cert),
                written(&t.client_key),
            ]
        }),
        name: u.name.clone(),
        targets: u.targets.clone(),
        keepalive: u.conf.keepalive as usize,
        idle_timeout: u.conf.idle_timeout.0,
    };
    let key = SelectKey {
        pool: key,
        weights: u.weights.clone(),
        balance: *u.conf.balance.get_ref(),
        hash_on: u.conf.hash_on.as_ref().map(|h| h.get_ref().clone()),
        hash_load_bound: *u.conf.hash_load_bound.get_ref(),
        health: u.conf.health.as_ref().map(|h| h.get_ref().clone()),
        outlier: u.conf.outlier.as_ref().map(|o| o.get_ref().clone()),
        retry: u.conf.retry.as_ref().map(|r| r.get_ref().clone()),
        breaker: u.conf.breaker.as_ref().map(|b| b.get_ref().clone()),
    };
    let old_pool = previous.and_then(|g| g.upstreams.iter().find(|o| o.key.pool == key.pool));
    // the same group with other targets (discovery): what stays is taken over by address
    let same_name = previous.and_then(|g| g.upstreams.iter().find(|o| o.name == u.name));
    let pool = match old_pool {
        Some(o) => o.pool.clone(),
        None => {
            let mut pool = Pool::new(
                key.pool.targets.len(),
                key.pool.keepalive,
                key.pool.idle_timeout,
            );
            if let Some(o) = same_name.filter(|o| o.key.pool.same_but_targets(&key.pool)) {
                let moves: Vec<(usize, usize)> = key
                    .pool
                    .targets
                    .iter()
                    .enumerate()
                    .filter_map(|(new, a)| {
                        Some((o.key.pool.targets.iter().position(|b| b == a)?, new))
                    })
                    .collect();
                pool.adopt(&mut o.pool.borrow_mut(), &moves);
            }
            Rc::new(RefCell::new(pool))
        }
    };
    let old = previous.and_then(|g| g.upstreams.iter().find(|o| o.key == key));
    let select = match old {
        Some(o) => o.select.clone(),
        None => {
            let select = Selector::new(
                &SelectConf {
                    conf: &u.conf,
                    addrs: &u.targets,
                    names: &u.target_names,
                    weights: &u.weights,
                },
                shard,
            );
            if let Some(o) = same_name {
                select.adopt(&o.select);
            }
            Rc::new(select)
        }
    };
    let targets = u
        .targets
        .iter()
        .zip(&u.target_names)
        .map(|(addr, name)| TargetRt {
            addr: *addr,
            host: name.as_bytes().into(),
            tls_name: tls.as_ref().map(|t| match &t.server_name {
                Some(n) => n.clone(),
                None => crate::tls::target_name(name, *addr),
            }),
        })
        .collect();
    Ok(UpstreamRt {
        name: u.name.clone(),
        targets,
        host: u.conf.host.clone(),
        connect_timeout: u.conf.connect_timeout.0,
        response_timeout: u.conf.response_timeout.0,
        pool,
        select,
        mux,
        tls,
        key,
    })
}

fn settings(config: &Config) -> Settings {
    let s = &config.server;
    Settings {
        limits: proto::Limits {
            max_request_line: s.max_request_line.as_usize(),
            max_head: s.max_head.as_usize(),
            max_fields: s.max_headers as usize,
            // parsed only where some route tunnels it; 501 at the parser otherwise
            allow_connect: config.routes.iter().any(|r| r.connect),
        },
        response_limits: proto::Limits {
            max_request_line: s.upstream_buffer.as_usize(),
            max_head: s.upstream_buffer.as_usize(),
            max_fields: 256,
            allow_connect: false,
        },
        outbound_limits: proto::Limits {
            max_request_line: 2 * s
                .upstream_buffer
                .as_usize()
                .max(s.max_request_line.as_usize()),
            max_head: 2 * s.upstream_buffer.as_usize().max(s.max_head.as_usize()),
            max_fields: 2 * (s.max_headers as usize).max(256),
            allow_connect: false,
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
        tunnel_idle_timeout: s.tunnel_idle_timeout.0,
        http2: s.http2.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Result<T> = std::result::Result<T, ConfErrors>;

    fn build(text: &str, shards: usize, previous: Option<&Gateway>) -> Result<Gateway> {
        let secret = TicketSecret::generate()
            .map_err(|e| ConfErrors(vec![conf::ConfError::whole_file("g.toml", e)]))?;
        Gateway::build(
            &conf::load_str("g.toml", text)?,
            shards,
            0,
            previous,
            &secret,
        )
    }

    const BASE: &str = "[[upstream]]\nname = \"a\"\ntargets = [\"127.0.0.1:9001\"]\n[[upstream]]\nname = \"b\"\ntargets = [\"127.0.0.1:9002\"]\n[[route]]\nname = \"r\"\npath = \"/\"\nupstream = \"a\"\n[[route.policy]]\nkind = \"rate_limit\"\nrate = 10\n";

    #[test]
    fn a_new_config_keeps_unchanged_pools_and_stage_state() -> Result<()> {
        let old = build(BASE, 1, None)?;
        let same = build(BASE, 1, Some(&old))?;
        assert!(same.kept_pool(&old, 0) && same.kept_pool(&old, 1));
        assert!(same.pipelines.shares_route_state(&old.pipelines, 0));
        // upstream `b` gains a target and the route's limit changes: both are new
        let changed = BASE
            .replace(
                "\"127.0.0.1:9002\"]",
                "\"127.0.0.1:9002\", \"127.0.0.1:9003\"]",
            )
            .replace("rate = 10", "rate = 20");
        let new = build(&changed, 1, Some(&old))?;
        assert!(new.kept_pool(&old, 0), "upstream `a` did not change");
        assert!(!new.kept_pool(&old, 1), "upstream `b` did");
        assert!(!new.pipelines.shares_route_state(&old.pipelines, 0));
        // a different shard count changes every limit's share: nothing is taken over
        let other = build(BASE, 2, Some(&old))?;
        assert!(!other.pipelines.shares_route_state(&old.pipelines, 0));
        Ok(())
    }
}
