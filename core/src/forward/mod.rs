//! Forwarding one exchange upstream in three steps — *select* a target, *attempt* it (a pooled
//! or new connection, the request out, the response head in), *relay* the response back —
//! with the decision to try again in one place (`retry`).

mod attempt;
mod outgoing;
mod relay;

use std::time::Instant;

use policy::balance::retry::backoff;
use policy::{Exchange, Outcome};
use proto::Version;

use crate::answer::{self, Answer};
use crate::body::Buffered;
use crate::conn::{Conn, Next, Persist};
use crate::error::{ProxyError, Side};
use crate::gateway::{Gateway, RouteRt, UpstreamRt};
use crate::shard::Shard;
use crate::upstream::select::{Result as Health, Selector};

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
    let sel = &up.select;
    let mut target = sel
        .pick(&conn.head, &conn.buf, ex, 0)
        .ok_or_else(no_upstream)?;
    sel.budget.earn();
    aim(ex, up, target);
    let mut out = Outgoing::prepare(conn, ex, up, f.head_len, s, pre).await?;
    let (mut fresh, mut tried) = (false, 0u64);
    loop {
        let in_flight = sel.begin(target);
        let result = attempt::attempt(conn, ex, up, target, &mut out, s, fresh).await;
        let now = Instant::now();
        let retry = match result {
            Ok(reply) => {
                let status = conn.resp.status;
                let health = if status >= 500 {
                    Health::ServerError
                } else {
                    Health::Ok
                };
                sel.report(target, health, now, &up.name);
                let again = sel.retry.on_status.contains(&status)
                    && reply.body_sent
                    && may_retry(sel, &out, ex, true);
                if !again {
                    let next =
                        relay::relay(shard, s, conn, ex, route, up, target, reply, f.close).await;
                    drop(in_flight);
                    return next;
                }
                // the answer is dropped unread with its connection
                Retry::Another
            }
            Err(e) => {
                drop(in_flight);
                match retry(&e, &out, fresh) {
                    Some(Retry::FreshConnection) => Retry::FreshConnection,
                    _ if e.failure.error.side() == Side::Downstream => return Err(e.failure),
                    _ => {
                        if !e.stale {
                            // a pooled connection that died is the pool's race, not the target's
                            sel.report(target, Health::Failed, now, &up.name);
                        }
                        let sent = !connect_failure(e.failure.error);
                        if !may_retry(sel, &out, ex, sent) {
                            return Err(e.failure);
                        }
                        Retry::Another
                    }
                }
            }
        };
        match retry {
            Retry::FreshConnection => {
                crate::log!(
                    Debug,
                    "shard {}: a pooled connection to {:?} was stale; retrying",
                    shard.id,
                    ex.upstream.addr
                );
                fresh = true;
            }
            Retry::Another => {
                if let Some(bit) = 1u64.checked_shl(target as u32) {
                    tried |= bit;
                }
                ex.upstream.retries = ex.upstream.retries.saturating_add(1);
                let p = &sel.retry;
                let wait = backoff(
                    p.backoff,
                    p.max_backoff,
                    ex.upstream.retries.into(),
                    sel.rng.next(),
                );
                if !wait.is_zero() {
                    monoio::time::sleep(wait).await;
                }
                let next = sel.pick(&conn.head, &conn.buf, ex, tried);
                target = next.unwrap_or(target);
                aim(ex, up, target);
                if let Some(t) = up.targets.get(target) {
                    out.readdress(&mut conn.out, &t.host);
                }
                conn.up_buf.clear();
                fresh = false;
            }
        }
    }
}

/// Records the target an attempt goes to.
fn aim(ex: &mut Exchange, up: &UpstreamRt, target: usize) {
    ex.upstream.target = Some(target);
    ex.upstream.addr = up.targets.get(target).map(|t| t.addr);
}

/// How to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// The same target on a new connection.
    FreshConnection,
    /// Another target (`[upstream.retry]`).
    Another,
}

/// Whether a failed attempt is tried again on a new connection to the same target: once,
/// when a pooled connection turned out stale (it failed before any response byte) and the
/// request can be sent again unchanged (its body is all in hand) and safely (an idempotent
/// method). A retry never takes another pooled connection: after an upstream restart they
/// are all stale.
fn retry(e: &AttemptError, out: &Outgoing, fresh: bool) -> Option<Retry> {
    (e.stale && out.can_retry() && !fresh).then_some(Retry::FreshConnection)
}

/// The failure happened before the request left: nothing reached the target.
fn connect_failure(e: ProxyError) -> bool {
    matches!(
        e,
        ProxyError::UpstreamConnect | ProxyError::UpstreamConnectTimeout | ProxyError::UpstreamTls
    )
}

/// Whether the request may go to another target: retries left, the whole request in hand,
/// a method safe to repeat once the target may have seen it (`sent`), and the budget pays.
fn may_retry(sel: &Selector, out: &Outgoing, ex: &Exchange, sent: bool) -> bool {
    let p = &sel.retry;
    u32::from(ex.upstream.retries) < p.retries
        && out.replayable()
        && (!sent || out.idempotent || p.non_idempotent)
        && sel.budget.spend()
}
