//! Forwarding one exchange upstream in three steps — *select* a target, *attempt* it (a pooled
//! or new connection, the request out, the response head in), *relay* the response back —
//! with the decision to try again in one place (`retry`).

mod attempt;
mod outgoing;
mod relay;

use policy::{Exchange, Outcome};
use proto::Version;

use crate::answer::{self, Answer};
use crate::body::Buffered;
use crate::conn::{Conn, Next, Persist};
use crate::error::ProxyError;
use crate::gateway::{Gateway, RouteRt};
use crate::shard::Shard;

use attempt::AttemptError;
use outgoing::Outgoing;

/// Why an exchange failed, and how far it got.
pub(crate) struct Failure {
    error: ProxyError,
    /// Response bytes already went to the client: the only option left is closing.
    response_started: bool,
    /// The whole request was read from the client: the connection can stay open.
    request_consumed: bool,
}

impl Failure {
    /// A failure before any response byte went to the client.
    fn before_response(error: ProxyError, request_consumed: bool) -> Failure {
        Failure {
            error,
            response_started: false,
            request_consumed,
        }
    }

    /// A failure after the response started.
    fn after_response(error: ProxyError) -> Failure {
        Failure {
            error,
            response_started: true,
            request_consumed: false,
        }
    }
}

/// What forwarding an exchange needs besides the connection and the exchange's record.
pub struct Forwarding<'a> {
    /// The shard.
    pub shard: &'a Shard,
    /// The config the exchange runs on.
    pub gw: &'a Gateway,
    /// Its route.
    pub route: &'a RouteRt,
    /// Length of the request head at the start of `conn.buf`.
    pub head_len: usize,
    /// The client connection closes after this exchange.
    pub close: bool,
}

/// Forwards the request in `conn` to the route's upstream and relays the answer; its body
/// was already read whole when `pre` holds it.
pub async fn proxy(
    f: &Forwarding<'_>,
    conn: &mut Conn,
    ex: &mut Exchange,
    pre: Option<Buffered>,
) -> Next {
    let (shard, gw) = (f.shard, f.gw);
    let version = conn.head.version;
    let size = gw.settings.upstream_buffer;
    conn.up_buf = shard.take_buffer(size);
    let result = forward(f, conn, ex, pre).await;
    shard.give_buffer(std::mem::take(&mut conn.up_buf), size);
    match result {
        Ok(next) => {
            ex.outcome = Outcome::Forwarded;
            next
        }
        Err(failure) => {
            crate::log!(
                Debug,
                "shard {}: route `{}`: {}",
                shard.id,
                f.route.name,
                failure.error
            );
            failed(shard, gw, conn, ex, failure, f.close, version).await
        }
    }
}

/// Answers a failed exchange with its error, or closes when that is all that is left.
async fn failed(
    shard: &Shard,
    gw: &Gateway,
    conn: &mut Conn,
    ex: &mut Exchange,
    f: Failure,
    close: bool,
    version: Version,
) -> Next {
    let answer = match Answer::of_error(f.error) {
        Some(a) if !f.response_started => a,
        _ => {
            ex.outcome = Outcome::Aborted;
            return Next::Abort;
        }
    };
    let keep = !close && f.request_consumed && !shard.draining.get();
    let outcome = match f.error.side() {
        crate::error::Side::Upstream => Outcome::Failed,
        crate::error::Side::Downstream => Outcome::Answered,
    };
    let timeout = gw.settings.client_body_timeout;
    let persist = Persist::of(!keep, version);
    answer::send(shard, conn, ex, answer, b"", persist, outcome, timeout).await
}

async fn forward(
    f: &Forwarding<'_>,
    conn: &mut Conn,
    ex: &mut Exchange,
    pre: Option<Buffered>,
) -> Result<Next, Failure> {
    let (shard, gw, route) = (f.shard, f.gw, f.route);
    let s = &gw.settings;
    let no_upstream = || Failure::before_response(ProxyError::NoUpstream, false);
    let up = route
        .upstream
        .and_then(|i| gw.upstreams.get(i))
        .ok_or_else(no_upstream)?;
    let target = up
        .select
        .pick(up.targets.len(), None, ex)
        .ok_or_else(no_upstream)?;
    ex.upstream.target = Some(target);
    ex.upstream.addr = up.targets.get(target).map(|t| t.addr);
    let mut out = Outgoing::prepare(conn, ex, up, f.head_len, s, pre).await?;
    let mut fresh = false;
    loop {
        match attempt::attempt(conn, ex, up, target, &mut out, s, fresh).await {
            Ok(reply) => {
                return relay::relay(shard, s, conn, ex, route, up, target, reply, f.close).await;
            }
            Err(e) => match retry(&e, &out, ex.upstream.attempts) {
                Some(Retry::FreshConnection) => {
                    crate::log!(
                        Debug,
                        "shard {}: a pooled connection to {:?} was stale; retrying",
                        shard.id,
                        ex.upstream.addr
                    );
                    fresh = true;
                }
                None => return Err(e.failure),
            },
        }
    }
}

/// How to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// The same target on a new connection.
    FreshConnection,
}

/// Whether to try a failed attempt again: once, on a new connection, when a pooled
/// connection turned out stale (it failed before any response byte) and the request can be
/// sent again unchanged (its body is all in hand) and safely (an idempotent method). A retry
/// never takes another pooled connection: after an upstream restart they are all stale.
fn retry(e: &AttemptError, out: &Outgoing, attempts: u8) -> Option<Retry> {
    (e.stale && out.can_retry() && attempts < 2).then_some(Retry::FreshConnection)
}
