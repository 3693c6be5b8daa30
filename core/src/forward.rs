//! Forwarding one exchange upstream: request out, response back, both streamed with bounded
//! buffers; the upstream connection returns to the pool only when clean.

use std::os::fd::AsRawFd;
use std::time::Instant;

use monoio::net::TcpStream;
use policy::Exchange;
use proto::write::{CHUNK_END, LAST_CHUNK, write_chunk_size};
use proto::{ChunkedDecoder, Framing, ParseError, Status, Step, parse_response, response_framing};

use crate::body::Buffered;
use crate::downstream::{Conn, Next, Persist};
use crate::error::ProxyError;
use crate::gateway::{RouteRt, Settings, UpstreamRt};
use crate::headers::{ClientFraming, write_request_head, write_response_head};
use crate::io::{self, IoFail};
use crate::shard::Shard;

/// A body still to be moved.
enum Body {
    /// Everything moved.
    Done,
    /// This many bytes to go.
    Length(u64),
    /// Chunked, mid-way; `seen` data bytes so far, refused beyond `limit`.
    Chunked {
        dec: ChunkedDecoder,
        seen: u64,
        limit: u64,
    },
    /// Until the upstream closes.
    UntilClose,
}

impl Body {
    fn is_done(&self) -> bool {
        matches!(self, Body::Done | Body::Length(0))
    }
}

/// Why an exchange failed, and how far it got.
struct Failure {
    error: ProxyError,
    /// Response bytes already went to the client: the only option left is closing.
    response_started: bool,
    /// The whole request was read from the client: the connection can stay open.
    request_consumed: bool,
}

fn before_response(error: ProxyError, request_consumed: bool) -> Failure {
    Failure {
        error,
        response_started: false,
        request_consumed,
    }
}

fn after_response(error: ProxyError) -> Failure {
    Failure {
        error,
        response_started: true,
        request_consumed: false,
    }
}

/// Forwards the request in `conn` (head of `head_len` bytes) to the route's upstream.
pub async fn proxy(
    shard: &Shard,
    conn: &mut Conn,
    route: &RouteRt,
    head_len: usize,
    ex: &mut Exchange,
    close: bool,
    pre: Option<Buffered>,
) -> Next {
    let head_only = conn.head.method == proto::Method::Head;
    let version = conn.head.version;
    conn.up_buf = shard.take_buffer();
    let result = forward(shard, conn, route, head_len, ex, close, pre).await;
    shard.give_buffer(std::mem::take(&mut conn.up_buf));
    match result {
        Ok(keep) => keep,
        Err(f) => {
            crate::log!(
                Debug,
                "shard {}: route `{}`: {}",
                shard.id,
                route.name,
                f.error
            );
            if f.response_started {
                return Next::Abort;
            }
            let Some(status) = f.error.status() else {
                return Next::Abort;
            };
            ex.status = status;
            let keep = !close && f.request_consumed && !shard.draining.get();
            let persist = if keep {
                Persist::Keep(version)
            } else {
                Persist::Close
            };
            crate::downstream::send_error(shard, conn, f.error, persist, head_only, b"").await;
            if keep { Next::KeepAlive } else { Next::Close }
        }
    }
}

async fn forward(
    shard: &Shard,
    conn: &mut Conn,
    route: &RouteRt,
    head_len: usize,
    ex: &mut Exchange,
    close: bool,
    pre: Option<Buffered>,
) -> Result<Next, Failure> {
    let gw = &shard.gw;
    let s = &gw.settings;
    let Some((up_idx, up)) = route
        .upstream
        .and_then(|i| gw.upstreams.get(i).map(|u| (i, u)))
    else {
        return Err(before_response(ProxyError::NoUpstream, false));
    };
    let target = shard.next_target(up_idx, up.targets.len());
    let Some(&addr) = up.targets.get(target) else {
        return Err(before_response(ProxyError::NoUpstream, false));
    };
    let method = conn.head.method;
    let client_version = conn.head.version;
    let expect_continue = conn.head.expect_continue;

    // Request head and the body bytes already read, in one buffer for one write.
    conn.out.clear();
    write_request_head(
        &mut conn.out,
        &conn.head,
        &conn.buf,
        up,
        target,
        &s.forwarding,
        ex,
    );
    // the server-wide limit, or a route's smaller one (the validate stage)
    let max_body = s.max_body.min(ex.max_body);
    let mut body = match conn.head.framing {
        Framing::Length(n) if n > max_body => {
            return Err(before_response(ProxyError::ClientBodyTooLarge, false));
        }
        Framing::Length(n) => Body::Length(n),
        Framing::Chunked => Body::Chunked {
            dec: ChunkedDecoder::new(),
            seen: 0,
            limit: max_body,
        },
        Framing::UntilClose => Body::Done,
    };
    let consumed = match pre {
        // a body a stage read whole goes as one Content-Length body
        Some(b) => {
            conn.out.extend_from_slice(&b.body);
            body = Body::Done;
            b.raw_len
        }
        None => {
            let avail = conn.buf.get(head_len..).unwrap_or_default();
            take_buffered(avail, &mut body, &mut conn.out)?
        }
    };
    conn.buf.drain(..(head_len + consumed).min(conn.buf.len()));
    let mut sent_continue = false;
    if !body.is_done() && consumed == 0 {
        // No body bytes yet: wait for the first ones before opening an upstream connection,
        // so a client that announces a body and sends nothing never ties up an upstream.
        if expect_continue {
            sent_continue = true;
            send_continue(conn, s)
                .await
                .map_err(|e| before_response(e, false))?;
        }
        io::read_more(&mut conn.stream, &mut conn.buf, s.client_body_timeout)
            .await
            .map_err(client_read_error)?;
        let c = take_buffered(&conn.buf, &mut body, &mut conn.out)?;
        conn.buf.drain(..c.min(conn.buf.len()));
    }
    let replayable = body.is_done();
    let can_retry = replayable && method.is_idempotent();

    let mut retried = false;
    // false when the upstream answered before the whole request body was sent
    let mut body_sent = true;
    let (mut upstream, resp_len) = loop {
        // A retry never takes another pooled connection: after an upstream restart they are
        // all stale.
        let pooled = if retried {
            None
        } else {
            shard
                .pools
                .get(up_idx)
                .and_then(|p| p.borrow_mut().checkout(target, Instant::now(), !can_retry))
        };
        let reused = pooled.is_some();
        let mut stream = match pooled {
            Some(st) => st,
            None => crate::upstream::connect::connect(addr, up.connect_timeout, s.tcp_nodelay)
                .await
                .map_err(|e| before_response(e, false))?,
        };
        let may_retry = reused && can_retry && !retried;
        match io::write_all(&mut stream, &mut conn.out, up.response_timeout).await {
            Ok(()) => {}
            Err(IoFail::Timeout) => {
                return Err(before_response(ProxyError::UpstreamTimeout, false));
            }
            Err(_) if may_retry => {
                retried = true;
                continue;
            }
            Err(_) => return Err(before_response(ProxyError::UpstreamClosed, false)),
        }
        if !body.is_done() {
            if expect_continue && !sent_continue {
                sent_continue = true;
                send_continue(conn, s)
                    .await
                    .map_err(|e| before_response(e, false))?;
            }
            body_sent = send_request_body(conn, &mut stream, &mut body, s, up).await?;
        }
        match read_response_head(conn, &mut stream, up, s).await {
            Ok(n) => break (stream, n),
            Err(None) if may_retry => {
                crate::log!(
                    Debug,
                    "shard {}: pooled connection to {addr} was stale; retrying",
                    shard.id
                );
                retried = true;
                continue;
            }
            Err(None) => return Err(before_response(ProxyError::UpstreamClosed, true)),
            Err(Some(e)) => return Err(before_response(e, true)),
        }
    };

    route.pipeline.on_response(&conn.resp, &conn.up_buf, ex);
    ex.status = conn.resp.status;
    let upstream_framing = response_framing(method, &conn.resp);
    let framing = ClientFraming::choose(method, &conn.resp, upstream_framing, client_version);
    // an early answer leaves the rest of the request body unread: the client connection
    // cannot carry another request, the upstream one is mid-request
    let close_client =
        close || framing == ClientFraming::Close || shard.draining.get() || !body_sent;
    conn.out.clear();
    write_response_head(
        &mut conn.out,
        &conn.resp,
        &conn.up_buf,
        framing,
        if close_client {
            Persist::Close
        } else {
            Persist::Keep(client_version)
        },
        &s.forwarding,
        &ex.response_fields,
        || shard.date_field(),
    );
    let avail = conn.up_buf.get(resp_len..).unwrap_or_default();
    let (consumed, mut rbody) = match upstream_framing {
        Framing::Length(n) => {
            let take = n.min(avail.len() as u64) as usize;
            conn.out
                .extend_from_slice(avail.get(..take).unwrap_or_default());
            (take, Body::Length(n - take as u64))
        }
        Framing::Chunked => {
            let mut dec = ChunkedDecoder::new();
            match reencode(
                &mut dec,
                avail,
                &mut conn.out,
                framing == ClientFraming::Chunked,
            ) {
                Ok((c, true, _)) => (c, Body::Done),
                Ok((c, false, _)) => (
                    c,
                    Body::Chunked {
                        dec,
                        seen: 0,
                        limit: u64::MAX,
                    },
                ),
                Err(e) => return Err(before_response(ProxyError::UpstreamMalformed(e), true)),
            }
        }
        Framing::UntilClose => {
            conn.out.extend_from_slice(avail);
            (avail.len(), Body::UntilClose)
        }
    };
    // RFC 9112 §6.3: TE with CL, or TE in an HTTP/1.0 response, is framing the upstream got
    // wrong; answer this one but do not trust the connection again.
    let dubious = conn.resp.transfer_encoding
        && (conn.resp.content_length.is_some() || conn.resp.version == proto::Version::Http10);
    let mut reusable =
        conn.resp.keep_alive() && upstream_framing != Framing::UntilClose && !dubious && body_sent;
    if rbody.is_done() && consumed < avail.len() {
        reusable = false; // bytes after the response: the connection is out of step
    }
    io::write_all(&mut conn.stream, &mut conn.out, s.client_body_timeout)
        .await
        .map_err(|_| after_response(ProxyError::ClientGone))?;
    send_response_body(
        conn,
        &mut upstream,
        &mut rbody,
        framing == ClientFraming::Chunked,
        s,
        up,
        &mut reusable,
    )
    .await?;
    if reusable && let Some(pool) = shard.pools.get(up_idx) {
        pool.borrow_mut().checkin(target, upstream, Instant::now());
    }
    Ok(if close_client {
        Next::Close
    } else {
        Next::KeepAlive
    })
}

/// Moves body bytes already read (`avail`) into `out` for the current body state; returns
/// how many bytes of `avail` belong to this body.
fn take_buffered(avail: &[u8], body: &mut Body, out: &mut Vec<u8>) -> Result<usize, Failure> {
    match body {
        Body::Length(rem) => {
            let take = (*rem).min(avail.len() as u64) as usize;
            out.extend_from_slice(avail.get(..take).unwrap_or_default());
            *rem -= take as u64;
            Ok(take)
        }
        Body::Chunked { dec, seen, limit } => {
            let (c, done, data) = reencode(dec, avail, out, true)
                .map_err(|e| before_response(ProxyError::ClientMalformed(e), false))?;
            *seen += data as u64;
            if *seen > *limit {
                return Err(before_response(ProxyError::ClientBodyTooLarge, false));
            }
            if done {
                *body = Body::Done;
            }
            Ok(c)
        }
        Body::Done | Body::UntilClose => Ok(0),
    }
}

/// Answers `Expect: 100-continue` (the expectation is ours: it is not forwarded).
/// Tells a client that sent `Expect: 100-continue` to go on with its body.
pub(crate) async fn send_continue(conn: &mut Conn, s: &Settings) -> Result<(), ProxyError> {
    let mut interim = Vec::from(&b"HTTP/1.1 100 Continue\r\n\r\n"[..]);
    io::write_all(&mut conn.stream, &mut interim, s.client_body_timeout)
        .await
        .map_err(|_| ProxyError::ClientGone)
}

/// Decodes chunked bytes from `src`, appending the data to `out` (re-chunked when
/// `to_chunked`). Returns bytes of `src` consumed, whether the body ended, and data bytes.
pub(crate) fn reencode(
    dec: &mut ChunkedDecoder,
    src: &[u8],
    out: &mut Vec<u8>,
    to_chunked: bool,
) -> Result<(usize, bool, usize), ParseError> {
    let mut pos = 0;
    let mut data_len = 0;
    loop {
        match dec.step(src.get(pos..).unwrap_or_default())? {
            Step::Data {
                start,
                len,
                consumed,
            } => {
                let data = src.get(pos + start..pos + start + len).unwrap_or_default();
                data_len += data.len();
                if !data.is_empty() {
                    if to_chunked {
                        write_chunk_size(out, data.len());
                        out.extend_from_slice(data);
                        out.extend_from_slice(CHUNK_END);
                    } else {
                        out.extend_from_slice(data);
                    }
                }
                pos += consumed;
            }
            Step::NeedMore => return Ok((src.len(), false, data_len)),
            Step::Done { consumed } => {
                if to_chunked {
                    out.extend_from_slice(LAST_CHUNK);
                }
                return Ok((pos + consumed, true, data_len));
            }
        }
    }
}

fn client_read_error(e: IoFail) -> Failure {
    before_response(
        match e {
            IoFail::Timeout => ProxyError::ClientBodyTimeout,
            _ => ProxyError::ClientGone,
        },
        false,
    )
}

fn upstream_write_error(e: IoFail) -> Failure {
    before_response(
        match e {
            IoFail::Timeout => ProxyError::UpstreamTimeout,
            _ => ProxyError::UpstreamClosed,
        },
        false,
    )
}

/// Streams the rest of the request body from the client to the upstream.
/// Streams the rest of the request body upstream. Returns false when the upstream answered
/// before it was all sent (checked before each piece, and when a write fails): its answer is
/// then read and relayed as usual.
async fn send_request_body(
    conn: &mut Conn,
    up: &mut TcpStream,
    body: &mut Body,
    s: &Settings,
    ups: &UpstreamRt,
) -> Result<bool, Failure> {
    let fd = up.as_raw_fd();
    let answered = || crate::sys::upstream_answered_early(fd);
    // A body is streaming: read it in `client_buffer`-sized pieces, not the small head buffer.
    if conn.buf.capacity() < s.client_buffer {
        conn.buf.reserve_exact(s.client_buffer - conn.buf.len());
    }
    match body {
        Body::Length(rem) => {
            while *rem > 0 {
                if conn.buf.is_empty() {
                    io::read_more(&mut conn.stream, &mut conn.buf, s.client_body_timeout)
                        .await
                        .map_err(client_read_error)?;
                }
                let take = (*rem).min(conn.buf.len() as u64) as usize;
                if answered() {
                    return Ok(false);
                }
                if let Err(e) =
                    io::write_range(up, &mut conn.buf, 0..take, ups.response_timeout).await
                {
                    return if answered() {
                        Ok(false)
                    } else {
                        Err(upstream_write_error(e))
                    };
                }
                conn.buf.drain(..take);
                *rem -= take as u64;
            }
        }
        Body::Chunked { dec, seen, limit } => loop {
            if conn.buf.is_empty() {
                io::read_more(&mut conn.stream, &mut conn.buf, s.client_body_timeout)
                    .await
                    .map_err(client_read_error)?;
            }
            conn.out.clear();
            let (c, done, data) = reencode(dec, &conn.buf, &mut conn.out, true)
                .map_err(|e| before_response(ProxyError::ClientMalformed(e), false))?;
            *seen += data as u64;
            if *seen > *limit {
                return Err(before_response(ProxyError::ClientBodyTooLarge, false));
            }
            conn.buf.drain(..c.min(conn.buf.len()));
            if answered() {
                return Ok(false);
            }
            if let Err(e) = io::write_all(up, &mut conn.out, ups.response_timeout).await {
                return if answered() {
                    Ok(false)
                } else {
                    Err(upstream_write_error(e))
                };
            }
            if done {
                break;
            }
        },
        Body::Done | Body::UntilClose => {}
    }
    *body = Body::Done;
    Ok(true)
}

/// Most interim (1xx) responses skipped before one final response.
const MAX_INTERIM_RESPONSES: u32 = 8;

/// Reads the response head into `conn.up_buf`, skipping interim (1xx) responses. `Err(None)`:
/// the upstream closed before sending a byte (a stale pooled connection).
async fn read_response_head(
    conn: &mut Conn,
    up: &mut TcpStream,
    ups: &UpstreamRt,
    s: &Settings,
) -> Result<usize, Option<ProxyError>> {
    if conn.up_buf.capacity() == 0 {
        // lost to a cancelled read on an earlier attempt
        conn.up_buf = Vec::with_capacity(s.upstream_buffer);
    }
    conn.up_buf.clear();
    let mut got_any = false;
    let mut interim = 0;
    // One deadline for the whole head: neither a trickled head nor a stream of 1xx answers
    // can hold the exchange past `response_timeout`.
    let deadline = Instant::now() + ups.response_timeout;
    loop {
        if !conn.up_buf.is_empty() {
            match parse_response(&conn.up_buf, &mut conn.resp, &s.response_limits) {
                Ok(Status::Complete(n)) if conn.resp.status < 200 => {
                    interim += 1;
                    if conn.resp.status == 101 || interim > MAX_INTERIM_RESPONSES {
                        // We never ask for an upgrade (Upgrade is hop-by-hop and dropped).
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

fn upstream_read_error(e: IoFail) -> Failure {
    after_response(match e {
        IoFail::Timeout => ProxyError::UpstreamTimeout,
        _ => ProxyError::UpstreamClosed,
    })
}

/// Streams the rest of the response body from the upstream to the client.
async fn send_response_body(
    conn: &mut Conn,
    up: &mut TcpStream,
    body: &mut Body,
    to_chunked: bool,
    s: &Settings,
    ups: &UpstreamRt,
    reusable: &mut bool,
) -> Result<(), Failure> {
    match body {
        Body::Length(rem) => {
            while *rem > 0 {
                conn.up_buf.clear();
                let n = io::read_more(up, &mut conn.up_buf, ups.response_timeout)
                    .await
                    .map_err(upstream_read_error)?;
                let take = (*rem).min(n as u64) as usize;
                if n > take {
                    *reusable = false;
                }
                io::write_range(
                    &mut conn.stream,
                    &mut conn.up_buf,
                    0..take,
                    s.client_body_timeout,
                )
                .await
                .map_err(|_| after_response(ProxyError::ClientGone))?;
                *rem -= take as u64;
            }
        }
        Body::Chunked { dec, .. } => loop {
            conn.up_buf.clear();
            io::read_more(up, &mut conn.up_buf, ups.response_timeout)
                .await
                .map_err(upstream_read_error)?;
            conn.out.clear();
            let (c, done, _) = reencode(dec, &conn.up_buf, &mut conn.out, to_chunked)
                .map_err(|e| after_response(ProxyError::UpstreamMalformed(e)))?;
            io::write_all(&mut conn.stream, &mut conn.out, s.client_body_timeout)
                .await
                .map_err(|_| after_response(ProxyError::ClientGone))?;
            if done {
                if c < conn.up_buf.len() {
                    *reusable = false;
                }
                break;
            }
        },
        Body::UntilClose => loop {
            conn.up_buf.clear();
            match io::read_more(up, &mut conn.up_buf, ups.response_timeout).await {
                Ok(n) => io::write_range(
                    &mut conn.stream,
                    &mut conn.up_buf,
                    0..n,
                    s.client_body_timeout,
                )
                .await
                .map_err(|_| after_response(ProxyError::ClientGone))?,
                Err(IoFail::Eof) => break,
                Err(e) => return Err(upstream_read_error(e)),
            }
        },
        Body::Done => {}
    }
    *body = Body::Done;
    Ok(())
}
