//! `ProxyError`: what went wrong in an exchange, on which side, and the one table that maps it
//! to a status code (or to closing the connection without an answer).

use std::fmt;

use proto::ParseError;

/// Which side of the proxy an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client.
    Downstream,
    /// The upstream server.
    Upstream,
}

/// Why an exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// The client sent a malformed head or body framing.
    ClientMalformed(ParseError),
    /// The client did not finish the request head in time.
    ClientHeadTimeout,
    /// The client paused too long inside the request body.
    ClientBodyTimeout,
    /// The request body is larger than `max_body`.
    ClientBodyTooLarge,
    /// The client closed or reset the connection, or stopped reading.
    ClientGone,
    /// No route matches the path (and host).
    NoRoute,
    /// The route's stages let the request through but it has no upstream.
    NoUpstream,
    /// Connecting to the upstream failed (refused, unreachable).
    UpstreamConnect,
    /// Connecting to the upstream took longer than `connect_timeout`.
    UpstreamConnectTimeout,
    /// The TLS handshake with the upstream failed (its certificate did not verify, no common
    /// version, …).
    UpstreamTls,
    /// The upstream closed or reset the connection before a complete response.
    UpstreamClosed,
    /// The upstream took longer than `response_timeout`.
    UpstreamTimeout,
    /// The upstream sent a malformed response.
    UpstreamMalformed(ParseError),
    /// Every target's circuit breaker is open; the first closes again in about this many
    /// seconds.
    CircuitOpen {
        /// Seconds until a trial request may go (for `Retry-After`).
        retry_after: u32,
    },
    /// The route's total deadline (`timeouts.total`) passed before the response started.
    Deadline,
}

impl ProxyError {
    /// The side at fault.
    pub fn side(self) -> Side {
        match self {
            ProxyError::ClientMalformed(_)
            | ProxyError::ClientHeadTimeout
            | ProxyError::ClientBodyTimeout
            | ProxyError::ClientBodyTooLarge
            | ProxyError::ClientGone
            | ProxyError::NoRoute
            | ProxyError::NoUpstream => Side::Downstream,
            _ => Side::Upstream,
        }
    }

    /// The status to answer with, or `None` when nobody is listening (the client left).
    pub fn status(self) -> Option<u16> {
        Some(match self {
            ProxyError::ClientMalformed(e) => e.status(),
            ProxyError::ClientHeadTimeout | ProxyError::ClientBodyTimeout => 408,
            ProxyError::ClientBodyTooLarge => 413,
            ProxyError::ClientGone => return None,
            ProxyError::NoRoute => 404,
            ProxyError::NoUpstream => 502,
            ProxyError::UpstreamConnect
            | ProxyError::UpstreamTls
            | ProxyError::UpstreamClosed
            | ProxyError::UpstreamMalformed(_) => 502,
            ProxyError::UpstreamConnectTimeout
            | ProxyError::UpstreamTimeout
            | ProxyError::Deadline => 504,
            ProxyError::CircuitOpen { .. } => 503,
        })
    }

    /// The client-safe `detail` of the problem body (never upstream addresses or OS text).
    pub fn detail(self) -> &'static str {
        match self {
            ProxyError::ClientMalformed(e) => e.detail(),
            ProxyError::ClientHeadTimeout => "request head not received in time",
            ProxyError::ClientBodyTimeout => "request body not received in time",
            ProxyError::ClientBodyTooLarge => "request body too large",
            ProxyError::ClientGone => "client closed the connection",
            ProxyError::NoRoute => "no route matches this request",
            ProxyError::NoUpstream => "route has no upstream",
            ProxyError::UpstreamConnect => "upstream unavailable",
            ProxyError::UpstreamConnectTimeout => "upstream connect timed out",
            ProxyError::UpstreamTls => "upstream unavailable",
            ProxyError::UpstreamClosed => "upstream closed the connection",
            ProxyError::UpstreamTimeout => "upstream response timed out",
            ProxyError::UpstreamMalformed(_) => "invalid response from upstream",
            ProxyError::CircuitOpen { .. } => "upstream temporarily unavailable",
            ProxyError::Deadline => "upstream did not answer in time",
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::ClientMalformed(e) | ProxyError::UpstreamMalformed(e) => {
                write!(f, "{}: {e}", self.detail())
            }
            _ => f.write_str(self.detail()),
        }
    }
}

impl std::error::Error for ProxyError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        let table = [
            (
                ProxyError::ClientMalformed(ParseError::Host),
                Some(400),
                Side::Downstream,
            ),
            (
                ProxyError::ClientMalformed(ParseError::HeadTooLarge),
                Some(431),
                Side::Downstream,
            ),
            (ProxyError::ClientHeadTimeout, Some(408), Side::Downstream),
            (ProxyError::ClientBodyTimeout, Some(408), Side::Downstream),
            (ProxyError::ClientBodyTooLarge, Some(413), Side::Downstream),
            (ProxyError::ClientGone, None, Side::Downstream),
            (ProxyError::NoRoute, Some(404), Side::Downstream),
            (ProxyError::NoUpstream, Some(502), Side::Downstream),
            (ProxyError::UpstreamConnect, Some(502), Side::Upstream),
            (
                ProxyError::UpstreamConnectTimeout,
                Some(504),
                Side::Upstream,
            ),
            (ProxyError::UpstreamTls, Some(502), Side::Upstream),
            (ProxyError::UpstreamClosed, Some(502), Side::Upstream),
            (ProxyError::UpstreamTimeout, Some(504), Side::Upstream),
            (
                ProxyError::UpstreamMalformed(ParseError::StatusLine),
                Some(502),
                Side::Upstream,
            ),
            (
                ProxyError::CircuitOpen { retry_after: 3 },
                Some(503),
                Side::Upstream,
            ),
            (ProxyError::Deadline, Some(504), Side::Upstream),
        ];
        for (e, status, side) in table {
            assert_eq!(e.status(), status, "{e:?}");
            assert_eq!(e.side(), side, "{e:?}");
            assert!(!e.detail().is_empty());
        }
    }
}
