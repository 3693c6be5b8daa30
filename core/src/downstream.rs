//! The per-connection loop, read top to bottom as the data flow: read and parse a head, route
//! it, run the route's stages, then answer locally or forward upstream; finish; repeat while
//! kept alive. Each step is a call named after it; the detail is in the callees.
//!
//! | step | where |
//! |---|---|
//! | read + parse head | `read_head` → `proto::parse_request` |
//! | route | `route` → `policy::Router::lookup` |
//! | policy | `Pipeline::on_request`, `wants_body` + `body::read_whole` + `on_body` |
//! | answer locally | `answer::send` |
//! | forward | `forward::proxy` (select → attempt → relay) |
//! | finish | `finish::Finish` (drop): `on_finish`, counters |

use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use policy::{Exchange, Lookup, Outcome, Params, Verdict};
use proto::{Status, Target, parse_request};

use crate::answer::{self, Answer};
use crate::conn::{Conn, Next, Persist};
use crate::error::ProxyError;
use crate::finish::Finish;
use crate::forward::Forwarding;
use crate::gateway::{Gateway, ListenerKind, Settings};
use crate::io::{self, IoFail};
use crate::park::{IDLE_HOLD, Parked, Phase};
use crate::shard::Shard;
use crate::stream::{Close, Transport};

/// Serves one client connection (its TLS, when it has any, already established) until it
/// closes. Each burst of requests runs boxed with fresh buffers; between bursts the connection
/// waits parked, holding none of them (`park`).
pub fn serve(shard: Rc<Shard>, conn: Parked) -> impl Future<Output = ()> {
    serve_parked(shard, Some(conn))
}

/// `serve` with the parked state in the one slot a burst takes it from and puts it back into
/// (a future keeps its arguments apart from its other state: one slot, stored once, keeps a
/// parked connection's task small).
async fn serve_parked(shard: Rc<Shard>, mut slot: Option<Parked>) {
    let Some((fd, phase)) = slot.as_ref().map(|p| (p.stream.fd(), p.phase.clone())) else {
        return;
    };
    let registered = shard.register(fd, phase);
    loop {
        if let Some(h2) = Box::pin(burst(&shard, &mut slot)).await {
            // the client spoke HTTP/2 (h2c): its connection is served and registered there
            shard.unregister(registered);
            let from = crate::h2::Origin {
                peer: h2.peer,
                listener: h2.listener,
                tls: None,
            };
            return crate::h2::serve(shard, h2.stream, h2.early, from).await;
        }
        let Some(parked) = slot.as_mut() else { break };
        let keepalive = shard.gateway().settings.keepalive_timeout;
        if !parked.wait(keepalive.saturating_sub(IDLE_HOLD)).await {
            // idled out: boxed, so the parked future stays small
            Box::pin(parked.stream.shutdown(Close::Clean)).await;
            break;
        }
    }
    shard.unregister(registered);
}

/// Serves one stream of an HTTP/2 connection (`h2::pipe`) as one exchange. Its connection is
/// registered and drained as a whole; the stream is neither registered nor parked.
pub async fn serve_stream(shard: &Shard, stream: Parked) {
    let mut slot = Some(stream);
    // a stream's read ends once its exchange is over: the burst serves one request
    let _ = Box::pin(burst(shard, &mut slot)).await;
}

/// A plain connection whose client began with the HTTP/2 preface, on an `h2c` listener.
struct H2Handover {
    stream: crate::stream::ClientStream,
    /// What was read of it.
    early: Vec<u8>,
    peer: std::net::SocketAddr,
    listener: crate::listener::ListenerId,
}

/// Serves requests on the connection in `slot` until it closes (`slot` left empty), no
/// request came for `IDLE_HOLD` (it is parked back into `slot`), or it turned out to speak
/// HTTP/2 (handed over).
async fn burst(shard: &Shard, slot: &mut Option<Parked>) -> Option<H2Handover> {
    let p = slot.take()?;
    let gw = shard.gateway();
    let mut conn = Conn::resume(p, gw.settings.client_buffer, gw.settings.limits.max_fields);
    drop(gw);
    let mut ex = Exchange {
        tls: conn.tls.clone(),
        ..Exchange::default()
    };
    let end = run(shard, &mut conn, &mut ex).await;
    let how = match end {
        End::Idle => {
            *slot = Some(conn.park());
            return None;
        }
        End::H2 => {
            return Some(H2Handover {
                stream: conn.stream,
                early: conn.buf,
                peer: conn.peer,
                listener: conn.listener,
            });
        }
        End::Abort => Close::Abort,
        End::Linger | End::Quiet => Close::Clean,
    };
    conn.stream.shutdown(how).await;
    if end == End::Linger {
        // Read what the client still sends for a moment, so closing does not reset the
        // connection before it has read our answer.
        drain_input(&mut conn).await;
    }
    None
}

/// How a connection's service ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The gateway closes after an answer: the close lingers, so the answer is not lost to a
    /// reset.
    Linger,
    /// The client left or idled out between requests.
    Quiet,
    /// The stream broke or an answer was cut short.
    Abort,
    /// No request came for `IDLE_HOLD`: the connection parks.
    Idle,
    /// The client began with the HTTP/2 preface on an `h2c` listener: hand it over.
    H2,
}

/// Serves requests until the connection should close.
async fn run(shard: &Shard, conn: &mut Conn, ex: &mut Exchange) -> End {
    loop {
        conn.phase.set(if conn.buf.is_empty() {
            Phase::Waiting
        } else {
            Phase::Busy
        });
        let read = read_head(&shard.gateway().settings, conn).await;
        // each exchange runs on the config current when its head arrived
        let gw = shard.gateway();
        conn.ready_out();
        let next = match read {
            Ok(Head::Gone) => return End::Quiet,
            Ok(Head::Idle) => return End::Idle,
            Ok(Head::Complete(head_len)) => {
                conn.served += 1;
                exchange(shard, &gw, conn, ex, head_len).await
            }
            Err(_) if conn.served == 0 && h2c(&gw, conn) => return End::H2,
            Err(e) => bad_head(shard, &gw, conn, ex, e).await,
        };
        match next {
            Next::KeepAlive if !shard.draining.get() => {}
            Next::KeepAlive | Next::Close => return End::Linger,
            Next::Abort => return End::Abort,
        }
    }
}

/// Whether the first bytes of `conn`, which did not parse as HTTP/1.1, are the HTTP/2
/// preface on a listener that takes it.
fn h2c(gw: &Gateway, conn: &Conn) -> bool {
    gw.listener(conn.listener).is_some_and(|l| l.h2c) && crate::h2::is_preface(&conn.buf)
}

/// What waiting for a head gave.
enum Head {
    /// A complete head of this many bytes is at the start of `conn.buf`.
    Complete(usize),
    /// Between requests, none came for `IDLE_HOLD` (and nothing was lost): park.
    Idle,
    /// The client left or idled out between requests (nothing to answer).
    Gone,
}

/// Reads until a complete head is in `conn.buf`.
async fn read_head(s: &Settings, conn: &mut Conn) -> Result<Head, ProxyError> {
    let mut deadline: Option<Instant> = None;
    let mut parse = true;
    let mut saw_line_end = false;
    loop {
        if parse && !conn.buf.is_empty() {
            match parse_request(&conn.buf, &mut conn.head, &s.limits) {
                Ok(Status::Complete(n)) => return Ok(Head::Complete(n)),
                Ok(Status::Partial) => {}
                Err(e) => return Err(ProxyError::ClientMalformed(e)),
            }
        }
        let now = crate::clock::now();
        let between = conn.buf.is_empty() && conn.served > 0 && deadline.is_none();
        let wait = match deadline {
            Some(d) => d.saturating_duration_since(now),
            None if !between => {
                deadline = Some(now + s.client_head_timeout);
                s.client_head_timeout
            }
            None => s.keepalive_timeout,
        };
        if wait.is_zero() {
            return Err(ProxyError::ClientHeadTimeout);
        }
        let before = conn.buf.len();
        // between requests, a short wait first that loses nothing when it ends: then park
        let hold = between && wait > IDLE_HOLD;
        let got = if hold {
            io::read_more_or_cancel(&mut conn.stream, &mut conn.buf, IDLE_HOLD, &mut conn.cancel)
                .await
        } else {
            io::read_more(&mut conn.stream, &mut conn.buf, wait).await
        };
        match got {
            Ok(_) => {}
            Err(IoFail::Full) if conn.buf.capacity() < s.client_buffer => {
                let cap = conn.buf.capacity();
                conn.buf.reserve_exact((cap * 2).min(s.client_buffer) - cap);
                parse = false;
                continue;
            }
            Err(IoFail::Full) => {
                return Err(ProxyError::ClientMalformed(proto::ParseError::HeadTooLarge));
            }
            Err(IoFail::Timeout) if hold => return Ok(Head::Idle),
            // Nothing of a request arrived: close quietly, like a keep-alive idle timeout.
            Err(IoFail::Timeout) if before == 0 => return Ok(Head::Gone),
            Err(IoFail::Timeout) => return Err(ProxyError::ClientHeadTimeout),
            Err(_) => return Ok(Head::Gone),
        }
        // A request has started: drain no longer counts this connection as idle.
        conn.phase.set(Phase::Busy);
        // Parsing restarts from the head's first byte, so parse again only when a line may
        // have ended (or the head is still short, so garbage is refused at once, or a limit is
        // crossed): a head trickled a byte at a time costs O(lines × head), not O(bytes × head).
        let fresh = conn.buf.get(before..).unwrap_or_default();
        let line_end = memchr::memchr(b'\n', fresh).is_some();
        saw_line_end |= line_end;
        let len = conn.buf.len();
        parse = line_end
            || len <= EAGER_PARSE_BYTES
            || (!saw_line_end && len > s.limits.max_request_line)
            || len > s.limits.max_head;
    }
}

/// Heads shorter than this are parsed after every read (cheap, and refuses garbage early).
const EAGER_PARSE_BYTES: usize = 1024;

/// A head that could not be read (malformed, too large, too slow): an exchange that is never
/// routed, answered with its error, after which the connection closes.
async fn bad_head(
    shard: &Shard,
    gw: &Gateway,
    conn: &mut Conn,
    ex: &mut Exchange,
    e: ProxyError,
) -> Next {
    // a precise start (latency figures); the wall time from the shard clock
    ex.begin(conn.peer, Instant::now(), crate::clock::wall());
    ex.bytes_in = conn.buf.len() as u64;
    conn.grpc = crate::grpc::Flavor::None;
    let mut fin = Finish::new(shard, gw, ex);
    gw.stamp.fresh(&shard.rng, &mut fin);
    let Some(answer) = Answer::of_error(e) else {
        return Next::Abort;
    };
    let timeout = gw.settings.client_body_timeout;
    let persist = Persist::Close;
    answer::send(
        shard,
        conn,
        &mut fin,
        answer,
        b"",
        persist,
        Outcome::Answered,
        timeout,
    )
    .await
}

/// A routed request: the route's index, its path captures, and the normalised target.
struct Routed {
    route: usize,
    params: Params,
    target: Option<Vec<u8>>,
    /// The hash of the capture the route's upstream hashes on.
    param_key: Option<u64>,
}

/// Why a request was not routed: the answer and its extra field (`Allow` for a 405).
struct Unrouted {
    status: u16,
    detail: &'static str,
    allow: Option<Vec<u8>>,
}

/// Routes the request in `conn` on its normalised path (the upstream is sent that same path,
/// never another than the routes and stages judged).
fn route(gw: &Gateway, conn: &Conn) -> Result<Routed, Unrouted> {
    let (head, buf) = (&conn.head, &conn.buf);
    let no_path = matches!(head.target_form, Target::Asterisk | Target::Authority);
    let normalized = if gw.settings.normalize_path && !no_path {
        proto::path::normalize(head.path(buf)).map_err(|e| Unrouted {
            status: 400,
            detail: e.detail(),
            allow: None,
        })?
    } else {
        None
    };
    let path = match &normalized {
        Some(t) => t.split(|&b| b == b'?').next().unwrap_or_default(),
        None if no_path => &b"/"[..],
        None => head.path_only(buf),
    };
    let not_found = Unrouted {
        status: 404,
        detail: ProxyError::NoRoute.detail(),
        allow: None,
    };
    let method = head.method_span.get(buf);
    match gw.router.lookup(head.authority(buf), path, method) {
        Lookup::Found(id, params) if gw.routes.get(id.0 as usize).is_some() => {
            let param_key = gw
                .routes
                .get(id.0 as usize)
                .and_then(|r| r.hash_param)
                .and_then(|i| params.get(i, path))
                .map(policy::balance::hash_bytes);
            Ok(Routed {
                route: id.0 as usize,
                params,
                target: normalized,
                param_key,
            })
        }
        Lookup::Found(..) | Lookup::NotFound => Err(not_found),
        Lookup::MethodNotAllowed(allow) => {
            let mut field = Vec::with_capacity(allow.len() + 9);
            proto::write::put_field(&mut field, b"Allow", allow.as_bytes());
            Err(Unrouted {
                status: 405,
                detail: "method not allowed on this route",
                allow: Some(field),
            })
        }
    }
}

/// One exchange: route the request, run its stages, then answer it here or forward it.
async fn exchange(
    shard: &Shard,
    gw: &Gateway,
    conn: &mut Conn,
    ex: &mut Exchange,
    head_len: usize,
) -> Next {
    let s = &gw.settings;
    // a precise start (latency figures); the wall time from the shard clock
    ex.begin(conn.peer, Instant::now(), crate::clock::wall());
    ex.method = conn.head.method;
    ex.bytes_in = head_len as u64;
    conn.grpc = crate::grpc::Flavor::of(&conn.head, &conn.buf);
    conn.takes_trailers = crate::headers::accepts_trailers(&conn.head, &conn.buf);
    let mut ex = Finish::new(shard, gw, ex);
    gw.stamp.apply(&shard.rng, &conn.head, &conn.buf, &mut ex);
    if gw.access_log.is_some() {
        let target = conn.head.target.get(&conn.buf);
        ex.target.extend_from_slice(target);
    }
    let close = !conn.head.keep_alive()
        || shard.draining.get()
        || (s.keepalive_requests > 0 && conn.served >= u64::from(s.keepalive_requests));
    if let Some(ListenerKind::Redirect(port)) = gw.listener(conn.listener).map(|l| &l.kind) {
        let location = https_location(conn, *port);
        let answer = Answer::Bodyless { status: 308 };
        return local(shard, s, conn, &mut ex, answer, &location, close, head_len).await;
    }
    let routed = match route(gw, conn) {
        Ok(r) => r,
        Err(u) => {
            let answer = Answer::Problem {
                status: u.status,
                detail: u.detail,
            };
            let fields = u.allow.unwrap_or_default();
            return local(shard, s, conn, &mut ex, answer, &fields, close, head_len).await;
        }
    };
    let Some(route) = gw.routes.get(routed.route) else {
        return Next::Abort;
    };
    ex.route = Some(policy::RouteId(routed.route as u32));
    ex.params = routed.params;
    ex.edits.target = routed.target;
    ex.upstream.param_key = routed.param_key;
    let mut verdict = route.pipeline.on_request(&conn.head, &conn.buf, &mut ex);
    while let Verdict::Wait(gate) = &verdict
        && ex.waits <= policy::stage::MAX_WAITS
    {
        // another exchange is fetching what this one needs (a cache miss), or another shard
        // answers: wait for it, at most as long as the gate says, then ask the stage again
        let _ = monoio::time::timeout(gate.limit(), gate.wait()).await;
        verdict = route.pipeline.on_request(&conn.head, &conn.buf, &mut ex);
    }
    if let Some(r) = ex.refresh.take() {
        crate::forward::refresh::spawn(
            shard.gateway(),
            routed.route,
            &conn.head,
            &conn.buf,
            &ex,
            r,
        );
    }
    if let Some(next) = verdict_answer(shard, s, conn, &mut ex, verdict, close, head_len).await {
        return next;
    }
    if let Some(plan) = &route.aggregate {
        let composed = crate::aggregate::run(gw, plan, &conn.head, &conn.buf, &ex).await;
        ex.upstream.attempts = composed.calls;
        let reply = match composed.reply {
            Ok((body, failed)) => {
                let partial =
                    (!failed.is_empty()).then_some((&plan.partial_header[..], &failed[..]));
                Ok(crate::aggregate::respond::reply(
                    &route.pipeline,
                    body,
                    partial,
                    &mut ex,
                ))
            }
            Err(detail) => Err(detail),
        };
        let answer = match &reply {
            Ok(reply) => Answer::Reply(reply),
            Err(detail) => Answer::Problem {
                status: 502,
                detail,
            },
        };
        let persist = after_local(conn, &mut ex, close, head_len);
        let timeout = s.client_body_timeout;
        let outcome = composed.outcome;
        return answer::send(shard, conn, &mut ex, answer, b"", persist, outcome, timeout).await;
    }
    let forwarding = Forwarding {
        shard,
        gw,
        route,
        head_len,
        close,
        deadline: match conn.grpc {
            crate::grpc::Flavor::None => None,
            _ => crate::grpc::timeout(&conn.head, &conn.buf),
        },
    };
    let Some(limit) = route.pipeline.wants_body(&conn.head, &conn.buf) else {
        return crate::forward::proxy(&forwarding, conn, &mut ex, None).await;
    };
    // a stage must see the body whole: read it (bounded), show it, then forward it
    let limit = limit.min(s.max_body).min(ex.max_body);
    let mut body = match crate::body::read_whole(conn, head_len, limit, s).await {
        Ok(b) => b,
        Err(e) => {
            let Some(answer) = Answer::of_error(e) else {
                return Next::Abort;
            };
            return local(shard, s, conn, &mut ex, answer, b"", true, head_len).await;
        }
    };
    let verdict = route
        .pipeline
        .on_body(&conn.head, &conn.buf, &body.body, &mut ex);
    if let Some(next) = verdict_answer(shard, s, conn, &mut ex, verdict, close, head_len).await {
        return next;
    }
    if let Some(made) = ex.edits.body.take() {
        body.body = made;
    }
    ex.edits.content_length = Some(body.body.len() as u64);
    crate::forward::proxy(&forwarding, conn, &mut ex, Some(body)).await
}

/// Sends the answer a stage decided on; `None` when the request goes on.
async fn verdict_answer(
    shard: &Shard,
    s: &Settings,
    conn: &mut Conn,
    ex: &mut Exchange,
    verdict: Verdict<'_>,
    close: bool,
    head_len: usize,
) -> Option<Next> {
    let (answer, fields, outcome) = match &verdict {
        // a Wait past `MAX_WAITS` is not waited for: the request goes on
        Verdict::Continue | Verdict::Wait(_) => return None,
        Verdict::Respond(reply) => (Answer::Reply(reply), &b""[..], Outcome::Answered),
        Verdict::Serve(reply) => (Answer::Reply(reply), &b""[..], Outcome::Answered),
        Verdict::Reject(r) => (
            Answer::Problem {
                status: r.status,
                detail: &r.detail,
            },
            &r.fields[..],
            Outcome::Refused,
        ),
        Verdict::Answer { status, fields } => (
            Answer::Bodyless { status: *status },
            &fields[..],
            Outcome::Answered,
        ),
    };
    let persist = after_local(conn, ex, close, head_len);
    let timeout = s.client_body_timeout;
    Some(answer::send(shard, conn, ex, answer, fields, persist, outcome, timeout).await)
}

/// The `Location` (and empty body) of the redirect a plain listener answers with: the same
/// host, path and query over `https` on `port`.
fn https_location(conn: &Conn, port: u16) -> Vec<u8> {
    let (head, buf) = (&conn.head, &conn.buf);
    let authority = head.authority(buf).unwrap_or_default();
    // the host without its port ([v6] kept whole)
    let host = match authority.iter().rposition(|&b| b == b':') {
        Some(i) if !authority.ends_with(b"]") => authority.get(..i).unwrap_or_default(),
        _ => authority,
    };
    let mut out = Vec::with_capacity(64 + host.len() + head.target.len as usize);
    out.extend_from_slice(b"Location: https://");
    out.extend_from_slice(host);
    if port != 443 {
        out.push(b':');
        proto::write::put_decimal(&mut out, u64::from(port));
    }
    let path = match head.target_form {
        Target::Asterisk | Target::Authority => &b"/"[..],
        _ => head.path(buf),
    };
    out.extend_from_slice(path);
    out.extend_from_slice(b"\r\nContent-Length: 0\r\n");
    out
}

/// Answers the request here (not a stage's answer: 404, 405, 400, 413 …).
#[expect(
    clippy::too_many_arguments,
    reason = "the exchange's inputs, each distinct"
)]
async fn local(
    shard: &Shard,
    s: &Settings,
    conn: &mut Conn,
    ex: &mut Exchange,
    answer: Answer<'_>,
    fields: &[u8],
    close: bool,
    head_len: usize,
) -> Next {
    let persist = after_local(conn, ex, close, head_len);
    let timeout = s.client_body_timeout;
    answer::send(
        shard,
        conn,
        ex,
        answer,
        fields,
        persist,
        Outcome::Answered,
        timeout,
    )
    .await
}

/// Whether the connection stays open after a local answer: only when asked and when the
/// request's body, never read, is already all here (it is skipped).
fn after_local(conn: &mut Conn, ex: &mut Exchange, close: bool, head_len: usize) -> Persist {
    let version = conn.head.version;
    if close {
        return Persist::Close;
    }
    match conn.skip_request(head_len) {
        Some(n) => {
            ex.bytes_in = n;
            Persist::Keep(version)
        }
        None => Persist::Close,
    }
}

/// Most bytes read and dropped while lingering before close.
const LINGER_BYTES: usize = 256 * 1024;
/// Longest linger before close.
const LINGER_TIME: Duration = Duration::from_millis(500);

async fn drain_input(conn: &mut Conn) {
    if conn.buf.capacity() == 0 {
        conn.buf = Vec::with_capacity(4096);
    }
    let end = Instant::now() + LINGER_TIME;
    let mut total = 0;
    while total < LINGER_BYTES {
        conn.buf.clear();
        let wait = end.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            break;
        }
        match io::read_more(&mut conn.stream, &mut conn.buf, wait).await {
            Ok(n) => total += n,
            Err(_) => break,
        }
    }
}
