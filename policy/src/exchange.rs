//! `Exchange`: the per-request state stages read and write. Plain typed fields, each saying
//! which step sets it.

use std::net::SocketAddr;
use std::time::Instant;

use crate::router::{Params, RouteId};

/// State of one request/response exchange.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Set by the connection: the client's address.
    pub client: SocketAddr,
    /// Set by the connection: when the request head was complete (stages never read a clock).
    pub now: Instant,
    /// Set by the router: the matched route.
    pub route: RouteId,
    /// Set by the router: captured path segments (offsets into the path).
    pub params: Params,
    /// Set by the connection after the response: its status (0 until then).
    pub status: u16,
}

impl Exchange {
    /// A new exchange for a routed request.
    pub fn new(client: SocketAddr, now: Instant, route: RouteId, params: Params) -> Exchange {
        Exchange {
            client,
            now,
            route,
            params,
            status: 0,
        }
    }
}
