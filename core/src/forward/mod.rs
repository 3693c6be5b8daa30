//! Forwarding one exchange upstream in three steps — *select* a target, *attempt* it (a pooled
//! or new connection, the request out, the response head in), *relay* the response back —
//! with the decision to try again in one place (`retry`).

mod attempt;
mod connect;
mod mirror;
mod outgoing;
pub mod refresh;
mod relay;
mod tunnel;

use std::time::Instant;

use policy::balance::retry::backoff;
use policy::{Exchange, Outcome};
use proto::Version;

use crate::answer::{self, Answer};
use crate::body::Buffered;
use crate::conn::{Conn, Next, Persist};
use crate::error::{ProxyError, Side};
use crate::gateway::{Gateway, RouteRt, Timeouts, UpstreamRt};
use crate::shard::Shard;
use crate::upstream::select::{Result as Health, Selector};

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
    /// The client's own deadline for the whole exchange (a gRPC call's `grpc-timeout`).
    pub deadline: Option<std::time::Duration>,
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
    ex.upgrade = f.route.websocket && crate::headers::is_upgrade(&conn.head, &conn.buf);
    // the total deadline is for an exchange, not for the tunnel an upgrade becomes
    let tunnel = ex.upgrade || conn.head.method == proto::Method::Connect;
    let total = match (f.route.timeouts.total.map(|t| t.0), f.deadline) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let result = match total.filter(|_| !tunnel) {
        None => forward(f, conn, ex, pre).await,
        Some(total) => match monoio::time::timeout(total, forward(f, conn, ex, pre)).await {
            Ok(r) => r,
            // a status is set just before the response head goes out: past it, only closing
            Err(_) if ex.status == 0 => Err(Failure::before_response(ProxyError::Deadline, false)),
            Err(_) => Err(Failure::after_response(ProxyError::Deadline)),
        },
    };
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
            let up = ex.upstream.group.and_then(|i| gw.upstreams.get(i));
            failed(shard, gw, up, conn, ex, failure, f.close, version).await
        }
    }
}

/// Answers a failed exchange with its error (or its group's fallback answer while every
/// circuit is open), or closes when that is all that is left.
#[expect(
    clippy::too_many_arguments,
    reason = "the exchange's inputs, each distinct; one call site"
)]
async fn failed(
    shard: &Shard,
    gw: &Gateway,
    up: Option<&UpstreamRt>,
    conn: &mut Conn,
    ex: &mut Exchange,
    f: Failure,
    close: bool,
    version: Version,
) -> Next {
    let keep = !close && f.request_consumed && !shard.draining.get();
    let (persist, timeout) = (Persist::of(!keep, version), gw.settings.client_body_timeout);
    if !f.response_started
        && f.error.side() == crate::error::Side::Upstream
        && let Some(instead) = ex.fallback.take()
    {
        // a stage holds an answer for this (a cache's stale copy)
        let outcome = Outcome::Answered;
        return answer::replacement(shard, conn, ex, &instead, persist, outcome, timeout).await;
    }
    let fallback = match f.error {
        ProxyError::CircuitOpen { .. } => up.and_then(|u| u.select.fallback.as_ref()),
        _ => None,
    };
    let answer = match (fallback, Answer::of_error(f.error)) {
        _ if f.response_started => {
            ex.outcome = Outcome::Aborted;
            return Next::Abort;
        }
        (Some(reply), _) => Answer::Reply(reply),
        (None, Some(a)) => a,
        (None, None) => {
            ex.outcome = Outcome::Aborted;
            return Next::Abort;
        }
    };
    let mut fields = Vec::new();
    if let (ProxyError::CircuitOpen { retry_after }, None) = (f.error, fallback) {
        let secs = retry_after.to_string();
        proto::write::put_field(&mut fields, b"Retry-After", secs.as_bytes());
    }
    let outcome = match f.error.side() {
        crate::error::Side::Upstream => Outcome::Failed,
        crate::error::Side::Downstream => Outcome::Answered,
    };
    answer::send(shard, conn, ex, answer, &fields, persist, outcome, timeout).await
}

/// What one pass of forwarding did.
enum Sent {
    /// The answer was relayed (or the tunnel ran): what the connection does next.
    Done(Next),
    /// The answer failed and a stage set a new request for another group: send that.
    Again,
}

/// The most times stages may send one failed request elsewhere.
const MAX_REROUTES: usize = 4;

/// Forwards the request, and again elsewhere each time a stage reroutes a failed answer (an
/// AI route's fallback provider). A request that may be rerouted has its raw body taken
/// from the buffer first (the stages hold it whole), so each pass finds the client's head
/// alone at the front and consumes exactly it; it is put back before the next pass, whose
/// body is the stage's.
async fn forward(
    f: &Forwarding<'_>,
    conn: &mut Conn,
    ex: &mut Exchange,
    pre: Option<Buffered>,
) -> Result<Next, Failure> {
    let mut pre = pre;
    let saved = match &mut pre {
        Some(b) if f.route.pipeline.reroutes() => {
            let head = conn.buf.get(..f.head_len).map(<[u8]>::to_vec);
            let len = conn.buf.len();
            let raw = f.head_len.min(len)..(f.head_len + b.raw_len).min(len);
            ex.bytes_in += raw.len() as u64;
            conn.buf.drain(raw);
            b.raw_len = 0;
            head
        }
        _ => None,
    };
    for turn in 0..=MAX_REROUTES {
        let may = saved.is_some() && turn < MAX_REROUTES;
        let before = conn.buf.len();
        match forward_once(f, conn, ex, pre.take(), may).await {
            Ok(Sent::Done(next)) => return Ok(next),
            Ok(Sent::Again) => {}
            // no answer (unreachable, timed out, every circuit open), and none begun: the
            // response head was not taken in (`ex.status` is set when it is)
            Err(e)
                if may
                    && !e.response_started
                    && ex.status == 0
                    && e.error.side() == Side::Upstream
                    && f.route.pipeline.reroute(None, ex) => {}
            Err(e) => return Err(e),
        }
        // nothing of the failed pass carries over: its response edits, taps, retries
        ex.response.clear();
        ex.taps.clear();
        ex.substitute = None;
        ex.status = 0;
        ex.upstream.retries = 0;
        // a pass that failed before preparing the request left the head where it was
        if let Some(head) = saved
            .as_ref()
            .filter(|h| conn.buf.len() + h.len() == before)
        {
            conn.buf.splice(0..0, head.iter().copied());
        }
        let body = ex.edits.body.take().unwrap_or_default();
        ex.edits.content_length = Some(body.len() as u64);
        pre = Some(Buffered { body, raw_len: 0 });
        conn.up_buf.clear();
    }
    Err(Failure::before_response(ProxyError::NoUpstream, false))
}

/// One pass: a group, a target (retried within the group as its policy says), the answer
/// relayed, or `Again` when `may_reroute` and a stage sent the failed request elsewhere.
async fn forward_once(
    f: &Forwarding<'_>,
    conn: &mut Conn,
    ex: &mut Exchange,
    pre: Option<Buffered>,
    may_reroute: bool,
) -> Result<Sent, Failure> {
    let (shard, gw, route) = (f.shard, f.gw, f.route);
    let s = &gw.settings;
    let no_upstream = || Failure::before_response(ProxyError::NoUpstream, false);
    // a stage may have picked the group (an AI route, its provider's)
    let group = (ex.upstream.group).or_else(|| route.choice.pick(&conn.head, &conn.buf, ex));
    ex.upstream.group = group;
    let up = group
        .and_then(|i| gw.upstreams.get(i))
        .ok_or_else(no_upstream)?;
    if conn.head.method == proto::Method::Connect {
        return connect::tunnel(f, conn, ex, up).await.map(Sent::Done);
    }
    let sel = &up.select;
    // read while the head is in the buffer: `prepare` consumes it, retries reuse the key
    let key = sel.key(&conn.head, &conn.buf, ex);
    let Some(mut target) = sel.pick_keyed(key, ex.now, 0) else {
        let mut failure = circuit_open(sel, ex.now);
        if conn.head.framing == proto::Framing::Length(0) && !ex.upgrade {
            // nothing more of this request to read: take its head, keep the connection
            conn.buf.drain(..f.head_len.min(conn.buf.len()));
            failure.request_consumed = true;
        }
        return Err(failure);
    };
    sel.budget.earn(ex.now);
    aim(ex, up, target);
    let shadow = route.choice.mirror().and_then(|g| {
        let t = gw
            .upstreams
            .get(g)?
            .select
            .pick(&conn.head, &conn.buf, ex, 0)?;
        Some((g, t))
    });
    let timeouts = Timeouts::of(up, &route.timeouts);
    let mut out = Outgoing::prepare(conn, ex, up, f.head_len, s, pre, timeouts).await?;
    if let Some((g, t)) = shadow
        && out.replayable()
    {
        mirror::spawn(shard.gateway(), g, t, &conn.out, conn.head.method);
    }
    let (mut fresh, mut tried) = (false, 0u64);
    let mut in_flight = None;
    // each turn either sends or passes over a target whose circuit just closed on it
    let turns = up.targets.len() + usize::try_from(sel.retry.retries).unwrap_or(8) + 2;
    for _ in 0..turns {
        if in_flight.is_none() {
            in_flight = sel.begin(target, Instant::now());
            if in_flight.is_none() {
                // its circuit opened since it was picked: another target, or fail fast
                tried |= bit(target);
                target = sel
                    .pick_keyed(key, Instant::now(), tried)
                    .ok_or_else(|| circuit_open(sel, Instant::now()))?;
                readdress(ex, up, target, &mut out, conn);
                continue;
            }
        }
        let result = attempt::attempt(conn, ex, up, target, &mut out, s, fresh).await;
        let now = Instant::now();
        let next = match result {
            Ok(reply) => {
                let status = conn.resp.status;
                let health = if status >= 500 {
                    Health::ServerError
                } else {
                    Health::Ok
                };
                sel.report(target, health, now, &up.name);
                let next = (sel.retry.on_status.contains(&status) && reply.body_sent)
                    .then(|| next_target(sel, key, now, tried, target))
                    .flatten()
                    .filter(|_| may_retry(sel, &out, conn, ex, true));
                let Some(next) = next else {
                    if may_reroute
                        && (status == 429 || status >= 500)
                        && route.pipeline.reroute(Some(status), ex)
                    {
                        // the failed answer is dropped unread with its connection
                        return Ok(Sent::Again);
                    }
                    let next =
                        relay::relay(shard, s, conn, ex, route, up, target, reply, f.close).await;
                    drop(in_flight);
                    return next.map(Sent::Done);
                };
                // the answer is dropped unread with its connection
                next
            }
            Err(e) => {
                if e.stale && out.can_retry() && !conn.out.is_empty() && !fresh {
                    // a stale pooled connection: once more on a new one, same target and permit
                    crate::log!(
                        Debug,
                        "shard {}: a pooled connection to {:?} was stale; retrying",
                        shard.id,
                        ex.upstream.addr
                    );
                    fresh = true;
                    continue;
                }
                if e.failure.error.side() == Side::Downstream {
                    return Err(e.failure);
                }
                if !e.stale {
                    // a pooled connection that died is the pool's race, not the target's
                    sel.report(target, Health::Failed, now, &up.name);
                }
                let sent = !connect_failure(e.failure.error);
                next_target(sel, key, now, tried, target)
                    .filter(|_| may_retry(sel, &out, conn, ex, sent))
                    .ok_or(e.failure)?
            }
        };
        in_flight = None;
        tried |= bit(target);
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
        target = next;
        readdress(ex, up, target, &mut out, conn);
        fresh = false;
    }
    Err(circuit_open(sel, Instant::now()))
}

/// Every circuit of the group is open: fail fast, nothing sent.
fn circuit_open(sel: &Selector, now: Instant) -> Failure {
    let retry_after = sel.retry_after(now);
    Failure::before_response(ProxyError::CircuitOpen { retry_after }, false)
}

/// Points the prepared request and the exchange's record at a new target.
fn readdress(
    ex: &mut Exchange,
    up: &UpstreamRt,
    target: usize,
    out: &mut Outgoing,
    conn: &mut Conn,
) {
    aim(ex, up, target);
    if let Some(t) = up.targets.get(target) {
        out.readdress(&mut conn.out, &t.host);
    }
    conn.up_buf.clear();
}

/// Records the target an attempt goes to.
fn aim(ex: &mut Exchange, up: &UpstreamRt, target: usize) {
    ex.upstream.target = Some(target);
    ex.upstream.addr = up.targets.get(target).map(|t| t.addr);
}

/// Bit `i` of a tried-targets mask (none past 63).
fn bit(i: usize) -> u64 {
    u32::try_from(i)
        .ok()
        .and_then(|i| 1u64.checked_shl(i))
        .unwrap_or(0)
}

/// The target a retry would go to: another than those tried when one is left, never the one
/// that just failed (a group of one does not retry), and never one whose circuit is open.
fn next_target(
    sel: &Selector,
    key: Option<u64>,
    now: Instant,
    tried: u64,
    current: usize,
) -> Option<usize> {
    sel.pick_keyed(key, now, tried | bit(current))
        .filter(|&next| next != current)
}

/// The failure happened before the request left: nothing reached the target.
fn connect_failure(e: ProxyError) -> bool {
    matches!(
        e,
        ProxyError::UpstreamConnect | ProxyError::UpstreamConnectTimeout | ProxyError::UpstreamTls
    )
}

/// Whether the request may go to another target: retries left, the whole request in hand
/// (and still in `conn.out`: a write that timed out took it), a method safe to repeat once the
/// target may have seen it (`sent`), and the budget pays.
fn may_retry(sel: &Selector, out: &Outgoing, conn: &Conn, ex: &Exchange, sent: bool) -> bool {
    let p = &sel.retry;
    u32::from(ex.upstream.retries) < p.retries
        && out.replayable()
        && !conn.out.is_empty()
        && (!sent || out.idempotent || p.non_idempotent)
        && sel.budget.spend()
}
