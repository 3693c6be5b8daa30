//! One attempt at a target: a pooled or new connection, the prepared request written and its
//! body streamed, and the response head read (interim answers skipped).

use std::time::Instant;

use policy::Exchange;
use proto::{ParseError, Status, parse_response};

use super::Failure;
use super::outgoing::Outgoing;
use crate::conn::Conn;
use crate::error::ProxyError;
use crate::gateway::{Settings, UpstreamRt};
use crate::io::{self, IoFail};
use crate::stream::UpstreamStream;

/// An attempt that got a response head.
pub(super) struct Replied {
    /// The connection it came on.
    pub stream: UpstreamStream,
    /// Length of the head at the start of `conn.up_buf`.
    pub head_len: usize,
    /// False when the upstream answered before the request body was all sent.
    pub body_sent: bool,
    /// Longest pause allowed in the response body.
    pub idle: std::time::Duration,
}

/// An attempt that failed.
pub(super) struct AttemptError {
    /// What failed.
    pub failure: Failure,
    /// The connection came from the pool and died before sending a byte: stale, most likely.
    pub stale: bool,
}

impl AttemptError {
    fn fatal(failure: Failure) -> AttemptError {
        AttemptError {
            failure,
            stale: false,
        }
    }
}

/// Most interim (1xx) responses skipped before one final response.
const MAX_INTERIM_RESPONSES: u32 = 8;

/// Sends the request in `conn.out` (and the rest of its body) to `target` of `up` and reads
/// the response head into `conn.up_buf`. `fresh`: never take a pooled connection.
pub(super) async fn attempt(
    conn: &mut Conn,
    ex: &mut Exchange,
    up: &UpstreamRt,
    target: usize,
    out: &mut Outgoing,
    s: &Settings,
    fresh: bool,
) -> Result<Replied, AttemptError> {
    let Some(t) = up.targets.get(target) else {
        return Err(AttemptError::fatal(Failure::before_response(
            ProxyError::NoUpstream,
            false,
        )));
    };
    let addr = t.addr;
    let tls = up.tls.as_ref().zip(t.tls_name.as_ref());
    let pooled = if fresh || up.mux.is_some() {
        None
    } else {
        up.pool
            .borrow_mut()
            .checkout(target, Instant::now(), !out.can_retry())
    };
    let reused = pooled.is_some();
    ex.upstream.attempts = ex.upstream.attempts.saturating_add(1);
    ex.upstream.reused = reused;
    let traffic = up.select.traffic.get(target);
    if let Some(t) = traffic {
        t.attempt(reused);
    }
    let mut stream = match (pooled, &up.mux) {
        (Some(st), _) => st,
        (None, Some(mux)) => {
            let open = crate::upstream::mux::Open {
                addr,
                tls,
                limit: out.timeouts.connect,
                nodelay: s.tcp_nodelay,
                limits: s.outbound_limits,
                send_timeout: out.timeouts.idle,
            };
            mux.open(target, open)
                .await
                .map_err(|e| AttemptError::fatal(Failure::before_response(e, false)))?
        }
        (None, None) => {
            let began = Instant::now();
            let st =
                crate::upstream::connect::connect(addr, out.timeouts.connect, s.tcp_nodelay, tls)
                    .await
                    .map_err(|e| AttemptError::fatal(Failure::before_response(e, false)))?;
            if let Some(t) = traffic {
                t.connected(began.elapsed());
            }
            st
        }
    };
    if conn.up_buf.capacity() == 0 {
        // lost to a cancelled read on an earlier attempt
        conn.up_buf = Vec::with_capacity(s.upstream_buffer);
    }
    conn.up_buf.clear();
    ex.upstream.sent_at = Some(Instant::now());
    match io::write_all(&mut stream, &mut conn.out, out.timeouts.idle).await {
        Ok(()) => {}
        Err(IoFail::Timeout) => {
            return Err(AttemptError::fatal(Failure::before_response(
                ProxyError::UpstreamTimeout,
                false,
            )));
        }
        Err(_) => {
            return Err(AttemptError {
                failure: Failure::before_response(ProxyError::UpstreamClosed, false),
                stale: reused,
            });
        }
    }
    let mut body_sent = true;
    if !out.body.is_done() {
        out.continue_if_asked(conn, s)
            .await
            .map_err(AttemptError::fatal)?;
        body_sent = out
            .send_rest(conn, ex, &mut stream, s)
            .await
            .map_err(AttemptError::fatal)?;
    }
    match read_response_head(conn, &mut stream, out.timeouts.first_byte, s, ex.upgrade).await {
        Ok(head_len) => {
            ex.upstream.head_at = Some(Instant::now());
            Ok(Replied {
                stream,
                head_len,
                body_sent,
                idle: out.timeouts.idle,
            })
        }
        Err(None) => Err(AttemptError {
            failure: Failure::before_response(ProxyError::UpstreamClosed, body_sent),
            stale: reused,
        }),
        Err(Some(e)) => Err(AttemptError::fatal(Failure::before_response(e, body_sent))),
    }
}

/// Reads the response head into `conn.up_buf` (which may hold its start already), skipping
/// interim (1xx) responses. `Err(None)`: the upstream closed before sending a byte.
async fn read_response_head(
    conn: &mut Conn,
    up: &mut UpstreamStream,
    first_byte: std::time::Duration,
    s: &Settings,
    upgrade: bool,
) -> Result<usize, Option<ProxyError>> {
    let mut got_any = !conn.up_buf.is_empty();
    let mut interim = 0;
    // One deadline for the whole head: neither a trickled head nor a stream of 1xx answers
    // can hold the exchange past the first-byte timeout.
    let deadline = Instant::now() + first_byte;
    loop {
        if !conn.up_buf.is_empty() {
            match parse_response(&conn.up_buf, &mut conn.resp, &s.response_limits) {
                // the upstream agreed to switch protocols: the head is the last HTTP of it
                Ok(Status::Complete(n)) if conn.resp.status == 101 && upgrade => return Ok(n),
                Ok(Status::Complete(n)) if conn.resp.status < 200 => {
                    interim += 1;
                    if conn.resp.status == 101 || interim > MAX_INTERIM_RESPONSES {
                        // a switch nobody asked for (Upgrade went only with an upgrade request)
                        return Err(Some(ProxyError::UpstreamMalformed(ParseError::StatusLine)));
                    }
                    conn.up_buf.drain(..n);
                    continue;
                }
                Ok(Status::Complete(_))
                    if conn.resp.other_codings
                        || (conn.resp.transfer_encoding && !conn.resp.chunked) =>
                {
                    // A coding we would have to pass on undecoded (gzip, …) without its
                    // framing: refuse rather than corrupt the body.
                    return Err(Some(ProxyError::UpstreamMalformed(
                        ParseError::UnknownTransferCoding,
                    )));
                }
                Ok(Status::Complete(n)) => return Ok(n),
                Ok(Status::Partial) => {}
                Err(e) => return Err(Some(ProxyError::UpstreamMalformed(e))),
            }
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return Err(Some(ProxyError::UpstreamTimeout));
        }
        match io::read_more(up, &mut conn.up_buf, wait).await {
            Ok(_) => got_any = true,
            Err(IoFail::Eof | IoFail::Error) if !got_any => return Err(None),
            Err(IoFail::Eof | IoFail::Error) => return Err(Some(ProxyError::UpstreamClosed)),
            Err(IoFail::Timeout) => return Err(Some(ProxyError::UpstreamTimeout)),
            Err(IoFail::Full) => {
                return Err(Some(ProxyError::UpstreamMalformed(
                    ParseError::HeadTooLarge,
                )));
            }
        }
    }
}
