//! `Exchange`: the per-request state stages read and write. Plain typed fields, each saying
//! which step sets it; request edits and response additions the connection applies.

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Instant;

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
}

/// Changes to the request before it is forwarded. Empty (and allocation-free) unless a stage
/// asks for one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edits {
    /// Indices into `RequestHead::fields` of incoming fields not to forward.
    pub drop_fields: Vec<u16>,
    /// Whole field lines (`Name: value\r\n`) to add.
    pub add_fields: Vec<u8>,
    /// A replacement request-target (origin-form).
    pub target: Option<Vec<u8>>,
    /// The body was read whole (for a stage) and goes upstream with this Content-Length,
    /// whatever its framing was.
    pub content_length: Option<u64>,
}

impl Edits {
    /// Adds a field line; `value` must already be a valid field value.
    pub fn add(&mut self, name: &[u8], value: &[u8]) {
        proto::write::put_field(&mut self.add_fields, name, value);
    }

    /// Drops incoming field `index`.
    pub fn drop_field(&mut self, index: usize) {
        if let Ok(i) = u16::try_from(index)
            && !self.drop_fields.contains(&i)
        {
            self.drop_fields.push(i);
        }
    }

    /// True when field `index` is dropped.
    pub fn is_dropped(&self, index: usize) -> bool {
        u16::try_from(index).is_ok_and(|i| self.drop_fields.contains(&i))
    }
}

/// State of one request/response exchange.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Set by the connection: the peer's address.
    pub client: SocketAddr,
    /// The client's address for policy: the peer's, unless the `ip` stage believed a
    /// trusted proxy's `X-Forwarded-For`.
    pub client_ip: IpAddr,
    /// Set by the connection: when the request head was complete (stages never read a clock).
    pub now: Instant,
    /// Set by the router: the matched route.
    pub route: RouteId,
    /// Set by the router: captured path segments (offsets into the path).
    pub params: Params,
    /// Set by an authentication stage.
    pub identity: Option<Rc<Identity>>,
    /// Request changes stages asked for.
    pub edits: Edits,
    /// Field lines (`Name: value\r\n`) to add to the response, whoever writes it.
    pub response_fields: Vec<u8>,
    /// Largest request body for this route (the server's `max_body` still applies);
    /// `u64::MAX` unless a stage lowers it.
    pub max_body: u64,
    /// Stages holding a slot for this request until it finishes (the `concurrency` stage).
    pub permits: Vec<u32>,
    /// Set by the connection after the response: its status (0 until then).
    pub status: u16,
}

impl Exchange {
    /// A new exchange for a routed request.
    pub fn new(client: SocketAddr, now: Instant, route: RouteId, params: Params) -> Exchange {
        Exchange {
            client,
            client_ip: client.ip(),
            now,
            route,
            params,
            identity: None,
            edits: Edits::default(),
            response_fields: Vec::new(),
            max_body: u64::MAX,
            permits: Vec::new(),
            status: 0,
        }
    }
}
