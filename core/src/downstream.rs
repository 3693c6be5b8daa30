//! The per-connection loop. It reads as the data flow: read and parse a head, route it, run
//! the route's stages, then answer locally or forward upstream; repeat while kept alive.

use std::cell::Cell;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::io::AsyncWriteRent;
use monoio::net::TcpStream;
use policy::{Exchange, LocalReply, Lookup, Verdict};
use proto::{Framing, Method, RequestHead, ResponseHead, Status, Target, parse_request};

use crate::error::ProxyError;
use crate::io::{self, IoFail};
use crate::shard::Shard;

/// A client connection and its reusable buffers (allocated once per connection).
pub struct Conn {
    /// The socket.
    pub stream: TcpStream,
    /// The client's address.
    pub peer: SocketAddr,
    /// Unconsumed bytes from the client; a head is parsed from its start.
    pub buf: Vec<u8>,
    /// Bytes being assembled for the next write (heads, re-encoded chunks).
    pub out: Vec<u8>,
    /// Read buffer for the current upstream response (allocated on first use).
    pub up_buf: Vec<u8>,
    /// The current request head (spans into `buf`).
    pub head: RequestHead,
    /// The current response head (spans into `up_buf`).
    pub resp: ResponseHead,
    /// True while waiting for the next request (drain may close the connection then).
    idle: Rc<Cell<bool>>,
    /// Requests received on this connection.
    pub served: u64,
}

/// Serves one client connection until it closes.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr) {
    let s = &shard.gw.settings;
    if s.tcp_nodelay {
        let _ = stream.set_nodelay(true);
    }
    let idle = Rc::new(Cell::new(true));
    let slot = shard.register(stream.as_raw_fd(), idle.clone());
    let mut conn = Conn {
        stream,
        peer,
        // Small at first: most heads fit in 4 KiB; it grows up to `client_buffer` on demand.
        buf: Vec::with_capacity(INITIAL_BUFFER.min(s.client_buffer)),
        out: Vec::with_capacity(4096),
        up_buf: Vec::new(),
        head: RequestHead::with_capacity(s.limits.max_fields),
        resp: ResponseHead::with_capacity(16),
        idle,
        served: 0,
    };
    let linger = run(&shard, &mut conn).await;
    let _ = conn.stream.shutdown().await;
    if linger {
        // Read what the client still sends for a moment, so closing does not reset the
        // connection before it has read our answer.
        drain_input(&mut conn).await;
    }
    shard.unregister(slot);
}

/// Answers a connection over `max_connections` with 503 and closes it, without reading.
pub async fn refuse(shard: Rc<Shard>, mut stream: TcpStream) {
    if REFUSE_WARN.with(|t| t.allow(Instant::now(), Duration::from_secs(1)).is_some()) {
        crate::log!(
            Warn,
            "shard {}: max_connections ({}) reached; refusing new connections",
            shard.id,
            shard.gw.settings.max_connections
        );
    }
    let mut out = Vec::with_capacity(256);
    let date = shard.date_field();
    policy::reply::write_problem(
        &mut out,
        503,
        "too many connections",
        b"close",
        false,
        &[&date, b"Retry-After: 1\r\n"],
    );
    let _ = io::write_all(&mut stream, &mut out, Duration::from_secs(1)).await;
    let _ = stream.shutdown().await;
}

thread_local! {
    static REFUSE_WARN: crate::log::Throttle = const { crate::log::Throttle::new() };
}

/// Serves requests until the connection should close; true when the gateway closes it after
/// an answer (the close then lingers, so the answer is not lost to a reset).
async fn run(shard: &Shard, conn: &mut Conn) -> bool {
    loop {
        conn.idle.set(conn.buf.is_empty());
        let head_len = match read_head(shard, conn).await {
            Ok(Some(n)) => n,
            Ok(None) => return false,
            Err(e) => {
                send_error(shard, conn, e, Persist::Close, false, b"").await;
                return true;
            }
        };
        conn.served += 1;
        shard.stats.requests.set(shard.stats.requests.get() + 1);
        match exchange(shard, conn, head_len).await {
            Next::KeepAlive if !shard.draining.get() => {}
            Next::KeepAlive | Next::Close => return true,
            Next::Abort => return false,
        }
    }
}

/// What the connection does after an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Read the next request.
    KeepAlive,
    /// Close after the answer, lingering so unread client bytes do not reset it.
    Close,
    /// The client left or the stream broke: close at once.
    Abort,
}

/// Whether an answer keeps the connection, and the Connection field that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// `Connection: close`.
    Close,
    /// Kept alive; HTTP/1.0 clients are told so with `Connection: keep-alive`.
    Keep(proto::Version),
}

impl Persist {
    /// The Connection field value to send (empty: none).
    pub fn header(self) -> &'static [u8] {
        match self {
            Persist::Close => b"close",
            Persist::Keep(proto::Version::Http10) => b"keep-alive",
            Persist::Keep(proto::Version::Http11) => b"",
        }
    }

    fn of(close: bool, version: proto::Version) -> Persist {
        if close {
            Persist::Close
        } else {
            Persist::Keep(version)
        }
    }
}

/// Reads until a complete head is in `conn.buf`. `Ok(None)`: the client left or idled out
/// between requests (nothing to answer).
async fn read_head(shard: &Shard, conn: &mut Conn) -> Result<Option<usize>, ProxyError> {
    let s = &shard.gw.settings;
    let mut deadline: Option<Instant> = None;
    let mut parse = true;
    let mut saw_line_end = false;
    loop {
        if parse && !conn.buf.is_empty() {
            match parse_request(&conn.buf, &mut conn.head, &s.limits) {
                Ok(Status::Complete(n)) => return Ok(Some(n)),
                Ok(Status::Partial) => {}
                Err(e) => return Err(ProxyError::ClientMalformed(e)),
            }
        }
        let now = Instant::now();
        let wait = match deadline {
            Some(d) => d.saturating_duration_since(now),
            None if !conn.buf.is_empty() || conn.served == 0 => {
                deadline = Some(now + s.client_head_timeout);
                s.client_head_timeout
            }
            None => s.keepalive_timeout,
        };
        if wait.is_zero() {
            return Err(ProxyError::ClientHeadTimeout);
        }
        let before = conn.buf.len();
        match io::read_more(&mut conn.stream, &mut conn.buf, wait).await {
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
            // Nothing of a request arrived: close quietly, like a keep-alive idle timeout.
            Err(IoFail::Timeout) if before == 0 => return Ok(None),
            Err(IoFail::Timeout) => return Err(ProxyError::ClientHeadTimeout),
            Err(_) => return Ok(None),
        }
        // A request has started: drain no longer counts this connection as idle.
        conn.idle.set(false);
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

/// Initial read buffer of a client connection.
const INITIAL_BUFFER: usize = 4096;

/// Heads shorter than this are parsed after every read (cheap, and refuses garbage early).
const EAGER_PARSE_BYTES: usize = 1024;

/// Routes the request, runs its stages and answers or forwards it.
async fn exchange(shard: &Shard, conn: &mut Conn, head_len: usize) -> Next {
    let gw = &shard.gw;
    let s = &gw.settings;
    let close = !conn.head.keep_alive()
        || shard.draining.get()
        || (s.keepalive_requests > 0 && conn.served >= u64::from(s.keepalive_requests));
    let head = &conn.head;
    let buf = &conn.buf;
    // Route on the normalised path and forward that same path: the upstream never sees a path
    // other than the one the routes and stages judged.
    let normalized = if s.normalize_path && head.target_form != Target::Asterisk {
        match proto::path::normalize(head.path(buf)) {
            Ok(n) => n,
            Err(e) => {
                return answer_error(shard, conn, head_len, 400, e.detail(), close, b"").await;
            }
        }
    } else {
        None
    };
    let path = match &normalized {
        Some(t) => t.split(|&b| b == b'?').next().unwrap_or_default(),
        None if head.target_form == Target::Asterisk => &b"/"[..],
        None => head.path_only(buf),
    };
    let (route_id, params) =
        match gw
            .router
            .lookup(head.authority(buf), path, head.method_span.get(buf))
        {
            Lookup::Found(id, params) => (id, params),
            Lookup::MethodNotAllowed(allow) => {
                let mut extra = Vec::with_capacity(allow.len() + 9);
                extra.extend_from_slice(b"Allow: ");
                extra.extend_from_slice(allow.as_bytes());
                extra.extend_from_slice(b"\r\n");
                return answer_error(
                    shard,
                    conn,
                    head_len,
                    405,
                    "method not allowed on this route",
                    close,
                    &extra,
                )
                .await;
            }
            Lookup::NotFound => {
                let e = ProxyError::NoRoute;
                return answer_error(shard, conn, head_len, 404, e.detail(), close, b"").await;
            }
        };
    let Some(route) = gw.routes.get(route_id.0 as usize) else {
        return answer_error(
            shard,
            conn,
            head_len,
            404,
            ProxyError::NoRoute.detail(),
            close,
            b"",
        )
        .await;
    };
    let mut ex = Exchange::new(conn.peer, Instant::now(), route_id, params);
    ex.edits.target = normalized;
    let verdict = route.pipeline.on_request(&conn.head, &conn.buf, &mut ex);
    let next = match answer_stage(shard, conn, head_len, verdict, &mut ex, close).await {
        Some(next) => next,
        None => match route.pipeline.wants_body(&conn.head, &conn.buf) {
            None => crate::forward::proxy(shard, conn, route, head_len, &mut ex, close, None).await,
            Some(limit) => {
                let limit = limit.min(s.max_body).min(ex.max_body);
                match crate::body::read_whole(conn, head_len, limit, s).await {
                    Err(e) => {
                        let Some(status) = e.status() else {
                            return Next::Abort;
                        };
                        ex.status = status;
                        answer_error(shard, conn, head_len, status, e.detail(), true, b"").await
                    }
                    Ok(b) => {
                        let verdict = route
                            .pipeline
                            .on_body(&conn.head, &conn.buf, &b.body, &mut ex);
                        match answer_stage(shard, conn, head_len, verdict, &mut ex, close).await {
                            Some(next) => next,
                            None => {
                                ex.edits.content_length = Some(b.body.len() as u64);
                                crate::forward::proxy(
                                    shard,
                                    conn,
                                    route,
                                    head_len,
                                    &mut ex,
                                    close,
                                    Some(b),
                                )
                                .await
                            }
                        }
                    }
                }
            }
        },
    };
    route.pipeline.on_finish(&ex);
    next
}

/// Sends the answer a stage decided on (with the response fields stages added); `None` when
/// the request goes on.
async fn answer_stage(
    shard: &Shard,
    conn: &mut Conn,
    head_len: usize,
    verdict: Verdict<'_>,
    ex: &mut Exchange,
    close: bool,
) -> Option<Next> {
    Some(match verdict {
        Verdict::Continue => return None,
        Verdict::Respond(reply) => {
            ex.status = reply.status;
            answer_local(shard, conn, head_len, reply, &ex.response_fields, close).await
        }
        Verdict::Reject(r) => {
            ex.status = r.status;
            let mut fields = r.fields;
            fields.extend_from_slice(&ex.response_fields);
            answer_error(shard, conn, head_len, r.status, &r.detail, close, &fields).await
        }
        Verdict::Answer { status, mut fields } => {
            ex.status = status;
            fields.extend_from_slice(&ex.response_fields);
            answer_bodyless(shard, conn, head_len, status, &fields, close).await
        }
    })
}

/// Consumes the request body if it is already fully buffered; false when it is not (the
/// connection must then close after a local answer, since the body was never read).
fn skip_buffered_body(conn: &mut Conn, head_len: usize) -> bool {
    let total = match conn.head.framing {
        Framing::Length(n) => head_len as u64 + n,
        Framing::Chunked | Framing::UntilClose => return false,
    };
    if (conn.buf.len() as u64) < total {
        return false;
    }
    conn.buf.drain(..total as usize);
    true
}

async fn answer_local(
    shard: &Shard,
    conn: &mut Conn,
    head_len: usize,
    reply: &LocalReply,
    extra: &[u8],
    close: bool,
) -> Next {
    let head_only = conn.head.method == Method::Head;
    let persist = Persist::of(
        close || !skip_buffered_body(conn, head_len),
        conn.head.version,
    );
    conn.out.clear();
    conn.out.extend_from_slice(&reply.head);
    conn.out.extend_from_slice(&shard.date_field());
    conn.out.extend_from_slice(extra);
    if !persist.header().is_empty() {
        proto::write::put_field(&mut conn.out, b"Connection", persist.header());
    }
    conn.out.extend_from_slice(b"\r\n");
    if !head_only {
        conn.out.extend_from_slice(&reply.body);
    }
    finish_answer(shard, conn, persist).await
}

async fn answer_error(
    shard: &Shard,
    conn: &mut Conn,
    head_len: usize,
    status: u16,
    detail: &str,
    close: bool,
    extra: &[u8],
) -> Next {
    let head_only = conn.head.method == Method::Head;
    let persist = Persist::of(
        close || !skip_buffered_body(conn, head_len),
        conn.head.version,
    );
    conn.out.clear();
    let date = shard.date_field();
    policy::reply::write_problem(
        &mut conn.out,
        status,
        detail,
        persist.header(),
        head_only,
        &[&date, extra],
    );
    finish_answer(shard, conn, persist).await
}

/// A bodyless answer made by a stage (a CORS preflight's 204): status, Date, its fields.
async fn answer_bodyless(
    shard: &Shard,
    conn: &mut Conn,
    head_len: usize,
    status: u16,
    fields: &[u8],
    close: bool,
) -> Next {
    let persist = Persist::of(
        close || !skip_buffered_body(conn, head_len),
        conn.head.version,
    );
    conn.out.clear();
    proto::write::put_status_line(
        &mut conn.out,
        status,
        proto::write::reason_phrase(status).as_bytes(),
    );
    conn.out.extend_from_slice(&shard.date_field());
    conn.out.extend_from_slice(fields);
    if !persist.header().is_empty() {
        proto::write::put_field(&mut conn.out, b"Connection", persist.header());
    }
    conn.out.extend_from_slice(b"\r\n");
    finish_answer(shard, conn, persist).await
}

async fn finish_answer(shard: &Shard, conn: &mut Conn, persist: Persist) -> Next {
    let sent = io::write_all(
        &mut conn.stream,
        &mut conn.out,
        shard.gw.settings.client_body_timeout,
    )
    .await;
    match (sent, persist) {
        (Ok(()), Persist::Keep(_)) => Next::KeepAlive,
        (Ok(()), Persist::Close) => Next::Close,
        (Err(_), _) => Next::Abort,
    }
}

/// Sends the problem answer for `e` (nothing if the client is gone).
pub async fn send_error(
    shard: &Shard,
    conn: &mut Conn,
    e: ProxyError,
    persist: Persist,
    head_only: bool,
    extra: &[u8],
) {
    let Some(status) = e.status() else { return };
    conn.out.clear();
    let date = shard.date_field();
    policy::reply::write_problem(
        &mut conn.out,
        status,
        e.detail(),
        persist.header(),
        head_only,
        &[&date, extra],
    );
    let _ = io::write_all(
        &mut conn.stream,
        &mut conn.out,
        shard.gw.settings.client_body_timeout,
    )
    .await;
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
