//! `Exchange`: the per-request state stages read and write and the record an access log or a
//! balancer reads when it ends. Plain typed fields, each saying which step sets it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use proto::{Field, Method};

use crate::reply::LocalReply;
use crate::router::{Params, RouteId};

/// Who made the request, as established by an authentication stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The consumer's name (a JWT's `sub`, an API key's consumer).
    pub consumer: Rc<str>,
    /// Granted scopes (`scope` / `scp` claims).
    pub scopes: Rc<[Box<str>]>,
    /// Roles or groups (a configured claim path, an API key consumer's groups).
    pub roles: Rc<[Box<str>]>,
    /// A JWT's top-level strings, numbers and booleans as text (empty for other
    /// authentications), for `${jwt.<claim>}` templates.
    pub claims: Rc<[(Box<str>, Box<str>)]>,
}

impl Identity {
    /// The text of top-level claim `name`, when the token had one.
    pub fn claim(&self, name: &str) -> Option<&str> {
        self.claims
            .iter()
            .find(|(k, _)| &**k == name)
            .map(|(_, v)| &**v)
    }
}

/// What the listener's TLS handshake established about the client connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `"TLSv1.2"` or `"TLSv1.3"`.
    pub version: &'static str,
    /// The name the client asked for (SNI).
    pub sni: Option<Box<str>>,
    /// The negotiated ALPN protocol.
    pub alpn: Option<Box<[u8]>>,
    /// The session was resumed (no full handshake).
    pub resumed: bool,
    /// The client's verified certificate (mTLS), when it presented one.
    pub client_cert: Option<ClientCert>,
}

/// A verified client certificate, as stages see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// Subject distinguished name, RFC 4514 (`CN=alice,O=Example`; values escaped).
    pub subject: Box<str>,
    /// Subject alternative names, typed: `DNS:host`, `URI:…`, `email:…`, `IP:…`.
    pub sans: Box<[Box<str>]>,
    /// SHA-256 of the certificate (DER), lower-case hex.
    pub sha256: Box<str>,
}

/// Fields to drop from a head and field lines to add to it. Empty (and allocation-free)
/// unless a stage asks for a change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldEdits {
    /// Indices into the head's `fields` of received fields not to pass on.
    pub drop: Vec<u16>,
    /// Whole field lines (`Name: value\r\n`) to add.
    pub add: Vec<u8>,
}

impl FieldEdits {
    /// Adds a field line; `value` must already be a valid field value.
    pub fn add(&mut self, name: &[u8], value: &[u8]) {
        proto::write::put_field(&mut self.add, name, value);
    }

    /// Drops received field `index`.
    pub fn drop_field(&mut self, index: usize) {
        if let Ok(i) = u16::try_from(index)
            && !self.drop.contains(&i)
        {
            self.drop.push(i);
        }
    }

    /// Drops every received field called `name` (ASCII case-insensitive).
    pub fn drop_named(&mut self, fields: &[Field], buf: &[u8], name: &[u8]) {
        for (i, f) in fields.iter().enumerate() {
            if f.name.get(buf).eq_ignore_ascii_case(name) {
                self.drop_field(i);
            }
        }
    }

    /// Replaces every received field called `name` by one with `value`.
    pub fn set(&mut self, fields: &[Field], buf: &[u8], name: &[u8], value: &[u8]) {
        self.drop_named(fields, buf, name);
        self.add(name, value);
    }

    /// Replaces each strong `ETag` by its weak form: the body is another representation now,
    /// so the strong validator no longer holds (RFC 9110 §8.8.1).
    pub fn weaken_etags(&mut self, fields: &[Field], buf: &[u8]) {
        for (i, f) in fields.iter().enumerate() {
            let v = f.value.get(buf);
            if f.name.get(buf).eq_ignore_ascii_case(b"etag") && v.starts_with(b"\"") {
                self.drop_field(i);
                self.add.extend_from_slice(b"ETag: W/");
                self.add.extend_from_slice(v);
                self.add.extend_from_slice(b"\r\n");
            }
        }
    }

    /// True when received field `index` is dropped.
    pub fn is_dropped(&self, index: usize) -> bool {
        u16::try_from(index).is_ok_and(|i| self.drop.contains(&i))
    }

    /// True when nothing is changed.
    pub fn is_empty(&self) -> bool {
        self.drop.is_empty() && self.add.is_empty()
    }

    /// Forgets every edit.
    pub fn clear(&mut self) {
        self.drop.clear();
        self.add.clear();
    }
}

/// Changes to the request before it is forwarded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edits {
    /// Request fields dropped and added.
    pub fields: FieldEdits,
    /// A replacement request-target (origin-form): the normalised path set at routing, or
    /// what a rewrite made of it (`Exchange::set_target`).
    pub target: Option<Vec<u8>>,
    /// A replacement `Host` value for the upstream (else the upstream's `host` setting).
    pub host: Option<Vec<u8>>,
    /// The body was read whole (for a stage) and goes upstream with this Content-Length,
    /// whatever its framing was.
    pub content_length: Option<u64>,
    /// A body a stage made of the one read whole (a translation), sent instead of it.
    pub body: Option<Vec<u8>>,
}

/// Tokens a model provider counted for one exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUsage {
    /// The model the client named.
    pub model: Rc<str>,
    /// The provider that answered.
    pub provider: Rc<str>,
    /// Prompt tokens.
    pub prompt: u64,
    /// Completion tokens.
    pub completion: u64,
    /// The estimated cost, in millionths of a US dollar.
    pub cost_microusd: u64,
}

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outcome {
    /// Not finished yet.
    #[default]
    Pending,
    /// Answered by the gateway: a stage's answer, a parse error, 404, 405.
    Answered,
    /// Refused by a stage (`Exchange::refusal` says why).
    Refused,
    /// The upstream's response was relayed whole.
    Forwarded,
    /// The upstream failed and the gateway answered with an error (502, 504, …).
    Failed,
    /// Cut short: the client left, or a failure after the response had started.
    Aborted,
}

/// What happened upstream, for logs, metrics and balancers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UpstreamRecord {
    /// Set by target selection: the index of the target in its upstream group.
    pub target: Option<usize>,
    /// Set by target selection: the target's address.
    pub addr: Option<SocketAddr>,
    /// Attempts made (a stale pooled connection retried counts twice).
    pub attempts: u8,
    /// Whether the answering connection came from the keep-alive pool.
    pub reused: bool,
    /// When the request head went upstream (last attempt).
    pub sent_at: Option<Instant>,
    /// When the response head was complete.
    pub head_at: Option<Instant>,
    /// Set at routing when the route's upstream hashes on a route parameter: its hash.
    pub param_key: Option<u64>,
    /// Attempts that went to another target than the one before (retries).
    pub retries: u8,
    /// The index of the upstream group: set by a stage (an AI route's provider) or else by
    /// the route's group choice.
    pub group: Option<usize>,
}

/// A stage that sees the response body, as `Pipeline::open_taps` recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tap {
    /// The stage's position in the pipeline (global stages first).
    pub stage: u16,
    /// It rewrites the body (else it only looks).
    pub rewrite: bool,
    /// Bytes it may still look at before it is told the body is too large.
    pub left: u64,
}

/// State of one request/response exchange. One per connection, cleared between requests
/// (`begin`), so its vectors keep their capacity.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Set by the connection: the peer's address.
    pub client: SocketAddr,
    /// The client's address for policy: the peer's, unless the `ip` stage believed a
    /// trusted proxy's `X-Forwarded-For`.
    pub client_ip: IpAddr,
    /// Set by the connection: when the request head was complete (stages never read a clock).
    pub now: Instant,
    /// Set by the connection: the wall-clock time matching `now` (token expiry, logs).
    pub wall: SystemTime,
    /// Set by the connection: the request method (`Other` until a head was parsed).
    pub method: Method,
    /// Set by the connection: the client connection's TLS (`None`: plain HTTP).
    pub tls: Option<Rc<TlsInfo>>,
    /// Set by the router: the matched route (`None`: the request was never routed).
    pub route: Option<RouteId>,
    /// Set by the router: captured path segments (offsets into the path).
    pub params: Params,
    /// Set by an authentication stage.
    pub identity: Option<Rc<Identity>>,
    /// Request changes stages asked for.
    pub edits: Edits,
    /// Response changes stages asked for: fields added to every answer (forwarded or made
    /// here), and received upstream fields dropped (indices set in `on_response`).
    pub response: FieldEdits,
    /// Largest request body for this route (the server's `max_body` still applies);
    /// `u64::MAX` unless a stage lowers it.
    pub max_body: u64,
    /// Stages holding a slot for this request until it finishes (the `concurrency` stage).
    pub permits: Vec<u32>,
    /// Set by the pipeline after `on_response`: the stages that see the response body.
    pub taps: Vec<Tap>,
    /// Set by the connection: the status sent (0 until then).
    pub status: u16,
    /// Set by the connection: how the exchange ended.
    pub outcome: Outcome,
    /// Set by the pipeline: the reason a stage refused the request.
    pub refusal: Option<&'static str>,
    /// Set by the connection: bytes of this request read from the client (head and body).
    pub bytes_in: u64,
    /// Set by the connection: bytes written to the client for this exchange.
    pub bytes_out: u64,
    /// Set by forwarding: the upstream side.
    pub upstream: UpstreamRecord,
    /// The request asks to switch protocols (WebSocket) and its route lets it: `Upgrade`
    /// goes upstream, and a `101` answer turns the connection into a tunnel.
    pub upgrade: bool,
    /// Set by the connection: the request's id (`[request_id]`; empty when off).
    pub request_id: RequestId,
    /// Set by the connection: the W3C trace id (all zero when tracing is off).
    pub trace_id: [u8; 16],
    /// Set by the connection when an access log wants it: the request target as received.
    pub target: Vec<u8>,
    /// Set by `begin`: this exchange's number, unique on its shard (a stage that keeps state
    /// from one hook to the next keys it by this).
    pub serial: u64,
    /// Set by a stage in `on_request`: the answer for when the upstream fails before its
    /// response started (a cache's stale copy, RFC 5861 `stale-if-error`).
    pub fallback: Option<Replacement>,
    /// Set by a stage in `on_response`: the answer the client gets instead of the
    /// upstream's response (a cache's stored response after a `304`).
    pub substitute: Option<Replacement>,
    /// Set by the `ai` stage when the answer ended: the model, its provider and the tokens
    /// it counted (for the access log).
    pub tokens: Option<Box<TokenUsage>>,
    /// Set by the pipeline when a stage said `Wait`: the stage `on_request` runs from next.
    pub resume: u16,
    /// Counted by the pipeline on each `Wait`: how often the exchange waited (the
    /// connection waits at most `MAX_WAITS` times, then the request goes on).
    pub waits: u8,
    /// Set by a stage in `on_request`: fetch this request's URL again in the background
    /// (a cache serving a stale copy under `stale-while-revalidate`).
    pub refresh: Option<Refresh>,
    /// Set by `set_target` on the first rewrite: the target the router matched, when it was
    /// not the received one (the route's captures point into its path).
    pub matched: Option<Vec<u8>>,
    /// A stage rewrote the target (`set_target`).
    pub rewritten: bool,
}

/// A background fetch a stage asks for: a GET of the request's target from the route's
/// upstream, its answer handed back to the pipeline's stages with `token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refresh {
    /// What the stage recognises the answer by.
    pub token: u64,
    /// Whole field lines to send (Host and Connection are added).
    pub fields: Vec<u8>,
}

/// An answer a stage holds instead of the upstream's: a reply it stored and the field lines
/// (`Age`, `Cache-Status`, …) sent with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    /// The reply.
    pub reply: Rc<LocalReply>,
    /// Whole field lines added to its head.
    pub fields: Vec<u8>,
}

thread_local! {
    /// The last exchange number given on this thread (one shard per thread).
    static SERIAL: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A request id, kept inline: visible ASCII, at most `RequestId::MAX` bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequestId {
    len: u8,
    bytes: [u8; RequestId::MAX],
}

impl RequestId {
    /// Longest id kept.
    pub const MAX: usize = 64;

    /// Sets the id to `id`; false (and unchanged) when it is empty, too long or not
    /// visible ASCII.
    pub fn set(&mut self, id: &[u8]) -> bool {
        let ok = !id.is_empty() && id.len() <= Self::MAX && id.iter().all(|b| b.is_ascii_graphic());
        if let (true, Some(dst)) = (ok, self.bytes.get_mut(..id.len())) {
            dst.copy_from_slice(id);
            self.len = id.len() as u8;
            true
        } else {
            false
        }
    }

    /// Forgets the id.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Its bytes (empty when none).
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }
}

impl Default for RequestId {
    fn default() -> RequestId {
        RequestId {
            len: 0,
            bytes: [0; RequestId::MAX],
        }
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl Default for Exchange {
    fn default() -> Exchange {
        let nowhere = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        Exchange {
            client: nowhere,
            client_ip: nowhere.ip(),
            now: Instant::now(),
            wall: UNIX_EPOCH,
            method: Method::Other,
            tls: None,
            route: None,
            params: Params::default(),
            identity: None,
            edits: Edits::default(),
            response: FieldEdits::default(),
            max_body: u64::MAX,
            permits: Vec::new(),
            taps: Vec::new(),
            status: 0,
            outcome: Outcome::Pending,
            refusal: None,
            bytes_in: 0,
            bytes_out: 0,
            upstream: UpstreamRecord::default(),
            upgrade: false,
            request_id: RequestId::default(),
            trace_id: [0; 16],
            target: Vec::new(),
            serial: 0,
            fallback: None,
            substitute: None,
            tokens: None,
            resume: 0,
            waits: 0,
            refresh: None,
            matched: None,
            rewritten: false,
        }
    }
}

impl Exchange {
    /// A new exchange for a routed request (tests and benches; the connection reuses one).
    pub fn new(client: SocketAddr, now: Instant, route: RouteId, params: Params) -> Exchange {
        let mut ex = Exchange::default();
        ex.begin(client, now, SystemTime::now());
        ex.route = Some(route);
        ex.params = params;
        ex
    }

    /// Clears everything for the next request from `client`, keeping capacity.
    pub fn begin(&mut self, client: SocketAddr, now: Instant, wall: SystemTime) {
        self.client = client;
        self.client_ip = client.ip();
        self.now = now;
        self.wall = wall;
        self.method = Method::Other;
        self.route = None;
        self.params = Params::default();
        self.identity = None;
        self.edits.fields.clear();
        self.edits.target = None;
        self.edits.host = None;
        self.edits.content_length = None;
        self.edits.body = None;
        self.response.clear();
        self.max_body = u64::MAX;
        self.permits.clear();
        self.taps.clear();
        self.status = 0;
        self.outcome = Outcome::Pending;
        self.refusal = None;
        self.bytes_in = 0;
        self.bytes_out = 0;
        self.upstream = UpstreamRecord::default();
        self.upgrade = false;
        self.request_id.clear();
        self.trace_id = [0; 16];
        self.target.clear();
        self.serial = SERIAL.with(|n| {
            n.set(n.get().wrapping_add(1));
            n.get()
        });
        self.fallback = None;
        self.substitute = None;
        self.tokens = None;
        self.resume = 0;
        self.waits = 0;
        self.refresh = None;
        self.matched = None;
        self.rewritten = false;
    }

    /// The target as it goes upstream now: received, normalised, or rewritten.
    pub fn target<'a>(&'a self, head: &proto::RequestHead, buf: &'a [u8]) -> &'a [u8] {
        self.edits
            .target
            .as_deref()
            .unwrap_or_else(|| head.path(buf))
    }

    /// Replaces the target sent upstream, keeping the one the router matched for captures.
    pub fn set_target(&mut self, target: Vec<u8>) {
        let before = self.edits.target.replace(target);
        if !self.rewritten {
            self.rewritten = true;
            self.matched = before;
        }
    }

    /// Route capture `i` (pattern order), as bytes of the path the router matched.
    pub fn param<'a>(
        &'a self,
        i: usize,
        head: &proto::RequestHead,
        buf: &'a [u8],
    ) -> Option<&'a [u8]> {
        let matched = if self.rewritten {
            self.matched.as_deref()
        } else {
            self.edits.target.as_deref()
        };
        let path = match matched {
            Some(t) => proto::path::split_query(t).0,
            None => head.path_only(buf),
        };
        self.params.get(i, path)
    }

    /// Seconds since the Unix epoch at `wall` (0 before it).
    pub fn unix_secs(&self) -> u64 {
        self.wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// The consumer's name, when a stage established one.
    pub fn consumer(&self) -> Option<&str> {
        self.identity.as_deref().map(|i| &*i.consumer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_clears_every_record_but_keeps_capacity() {
        let peer = SocketAddr::from(([127, 0, 0, 1], 5000));
        let mut ex = Exchange::new(peer, Instant::now(), RouteId(3), Params::default());
        ex.edits.fields.add(b"X-A", b"1");
        ex.response.add(b"X-B", b"2");
        ex.permits.push(7);
        ex.status = 503;
        ex.outcome = Outcome::Refused;
        ex.refusal = Some("concurrency");
        ex.bytes_in = 10;
        ex.upstream.attempts = 2;
        let cap = ex.edits.fields.add.capacity();
        ex.begin(peer, Instant::now(), UNIX_EPOCH);
        assert!(ex.edits.fields.is_empty() && ex.response.is_empty() && ex.permits.is_empty());
        assert_eq!(ex.edits.fields.add.capacity(), cap);
        assert_eq!(
            (ex.status, ex.outcome, ex.refusal),
            (0, Outcome::Pending, None)
        );
        assert_eq!((ex.route, ex.bytes_in, ex.upstream.attempts), (None, 0, 0));
    }
}
