//! The response back to the client: the stages' response hooks, the head re-written, the body
//! streamed (zero-copy for lengths, re-chunked otherwise, through the stages that tap it),
//! and the upstream connection returned to the pool only when clean.

use std::time::Instant;

use policy::Exchange;
use proto::chunked::{CHUNK_END, LAST_CHUNK, write_chunk_size};
use proto::{ChunkedDecoder, Emit, Framing, Version, response_framing};

use super::Failure;
use super::attempt::Replied;
use super::outgoing::Body;
use crate::conn::{Conn, Next, Persist};
use crate::error::ProxyError;
use crate::gateway::{RouteRt, Settings, UpstreamRt};
use crate::headers::{ClientFraming, write_response_head, write_switching_head};
use crate::io::{self, IoFail};
use crate::shard::Shard;
use crate::stream::UpstreamStream;

/// Sends the response whose head is in `conn.up_buf` to the client, then pools the upstream
/// connection if it is clean.
#[expect(
    clippy::too_many_arguments,
    reason = "the exchange's inputs, each distinct; one call site"
)]
pub(super) async fn relay(
    shard: &Shard,
    s: &Settings,
    conn: &mut Conn,
    ex: &mut Exchange,
    route: &RouteRt,
    up: &UpstreamRt,
    target: usize,
    reply: Replied,
    close: bool,
) -> Result<Next, Failure> {
    let Replied {
        stream: mut upstream,
        head_len,
        body_sent,
        idle,
    } = reply;
    let (method, version) = (ex.method, conn.head.version);
    if conn.resp.status == 101 {
        if !crate::headers::names_websocket(&conn.resp.fields, &conn.up_buf) {
            // a switch to something the client did not ask for: not a tunnel we open
            return Err(Failure::before_response(
                ProxyError::UpstreamMalformed(proto::ParseError::StatusLine),
                true,
            ));
        }
        return Ok(switch(shard, s, conn, ex, upstream, head_len).await);
    }
    route.pipeline.on_response(&conn.resp, &conn.up_buf, ex);
    if let Some(instead) = ex.substitute.take() {
        return Ok(substitute(
            shard, s, conn, ex, up, target, upstream, head_len, body_sent, close, instead,
        )
        .await);
    }
    ex.status = conn.resp.status;
    let upstream_framing = response_framing(method, &conn.resp);
    let bodyless = ClientFraming::bodyless(method, &conn.resp);
    let rewritten = !bodyless && route.pipeline.open_taps(&conn.resp, &conn.up_buf, ex);
    let framing = ClientFraming::choose(method, &conn.resp, upstream_framing, version, rewritten);
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
        Persist::of(close_client, version),
        &s.forwarding,
        &ex.response,
        || shard.date_field(),
    );
    // RFC 9112 §6.3: TE with CL, or TE in an HTTP/1.0 response, is framing the upstream got
    // wrong; answer this one but do not trust the connection again.
    let dubious = conn.resp.transfer_encoding
        && (conn.resp.content_length.is_some() || conn.resp.version == Version::Http10);
    let mut reusable =
        conn.resp.keep_alive() && upstream_framing != Framing::UntilClose && !dubious && body_sent;
    let to_chunked = framing == ClientFraming::Chunked;
    let mut body = match upstream_framing {
        Framing::Length(n) => Body::Length(n),
        Framing::Chunked if to_chunked && conn.takes_trailers => {
            Body::Chunked(ChunkedDecoder::new().keeping_trailers())
        }
        Framing::Chunked => Body::Chunked(ChunkedDecoder::new()),
        Framing::UntilClose => Body::UntilClose,
    };
    if ex.taps.is_empty() {
        let consumed = first_bytes(conn, head_len, &mut body, to_chunked, body_sent)?;
        if body.is_done() && head_len + consumed < conn.up_buf.len() {
            reusable = false; // bytes after the response: the connection is out of step
        }
        send(conn, ex, s).await?;
        stream_body(
            conn,
            ex,
            &mut upstream,
            &mut body,
            to_chunked,
            s,
            idle,
            &mut reusable,
        )
        .await?;
    } else {
        send(conn, ex, s).await?;
        conn.up_buf.drain(..head_len.min(conn.up_buf.len()));
        let ends = (to_chunked, &mut reusable);
        tapped_body(conn, ex, route, &mut upstream, &mut body, ends, s, idle).await?;
    }
    if reusable {
        up.pool
            .borrow_mut()
            .checkin(target, upstream, Instant::now());
    }
    Ok(if close_client {
        Next::Close
    } else {
        Next::KeepAlive
    })
}

/// A stage answers instead of the upstream (a cache's stored response after a `304`, its
/// stale copy after a `5xx`): the upstream connection goes back to the pool when its response
/// had no body to skip, and the client gets the stage's reply.
#[expect(
    clippy::too_many_arguments,
    reason = "the exchange's inputs, each distinct; one call site"
)]
async fn substitute(
    shard: &Shard,
    s: &Settings,
    conn: &mut Conn,
    ex: &mut Exchange,
    up: &UpstreamRt,
    target: usize,
    upstream: UpstreamStream,
    head_len: usize,
    body_sent: bool,
    close: bool,
    instead: policy::Replacement,
) -> Next {
    let bodyless =
        ClientFraming::bodyless(ex.method, &conn.resp) || conn.resp.content_length == Some(0);
    if bodyless && body_sent && conn.resp.keep_alive() && head_len == conn.up_buf.len() {
        up.pool
            .borrow_mut()
            .checkin(target, upstream, Instant::now());
    }
    let persist = Persist::of(
        close || !body_sent || shard.draining.get(),
        conn.head.version,
    );
    let (timeout, outcome) = (s.client_body_timeout, policy::Outcome::Forwarded);
    crate::answer::replacement(shard, conn, ex, &instead, persist, outcome, timeout).await
}

/// The upstream switched protocols: the `101` goes to the client, then the two connections
/// are one tunnel until it ends; the client connection closes after it.
async fn switch(
    shard: &Shard,
    s: &Settings,
    conn: &mut Conn,
    ex: &mut Exchange,
    upstream: UpstreamStream,
    head_len: usize,
) -> Next {
    ex.status = 101;
    conn.out.clear();
    write_switching_head(&mut conn.out, &conn.resp, &conn.up_buf, &s.forwarding);
    if send(conn, ex, s).await.is_err() {
        return Next::Abort;
    }
    let early_down = conn.up_buf.split_off(head_len.min(conn.up_buf.len()));
    super::tunnel::run(shard, conn, ex, upstream, early_down, s.tunnel_idle_timeout).await
}

/// Writes `conn.out` to the client.
async fn send(conn: &mut Conn, ex: &mut Exchange, s: &Settings) -> Result<(), Failure> {
    io::write_all(&mut conn.stream, &mut conn.out, s.client_body_timeout)
        .await
        .map_err(|_| Failure::after_response(ProxyError::ClientGone))?;
    ex.bytes_out += conn.out.len() as u64;
    Ok(())
}

/// Appends the body bytes that came with the head to `conn.out` (after the head, so both go
/// in one write); returns how many of them belong to the body. `body_sent`: the request was
/// read whole (else an error here must close the client connection).
fn first_bytes(
    conn: &mut Conn,
    head_len: usize,
    body: &mut Body,
    to_chunked: bool,
    body_sent: bool,
) -> Result<usize, Failure> {
    let avail = conn.up_buf.get(head_len..).unwrap_or_default();
    match body {
        Body::Length(rem) => {
            let take = (*rem).min(avail.len() as u64) as usize;
            conn.out
                .extend_from_slice(avail.get(..take).unwrap_or_default());
            *rem -= take as u64;
            Ok(take)
        }
        Body::Chunked(dec) => {
            let emit = if to_chunked {
                Emit::Chunked
            } else {
                Emit::Data
            };
            let d = dec.decode(avail, &mut conn.out, emit).map_err(|e| {
                Failure::before_response(ProxyError::UpstreamMalformed(e), body_sent)
            })?;
            if d.done {
                *body = Body::Done;
            }
            Ok(d.consumed)
        }
        Body::UntilClose => {
            conn.out.extend_from_slice(avail);
            Ok(avail.len())
        }
        Body::Done => Ok(0),
    }
}

fn upstream_read_error(e: IoFail) -> Failure {
    Failure::after_response(match e {
        IoFail::Timeout => ProxyError::UpstreamTimeout,
        _ => ProxyError::UpstreamClosed,
    })
}

fn client_gone(_: IoFail) -> Failure {
    Failure::after_response(ProxyError::ClientGone)
}

/// Streams the rest of the response body from the upstream to the client.
#[expect(
    clippy::too_many_arguments,
    reason = "the body's state and both ends; one call site"
)]
async fn stream_body(
    conn: &mut Conn,
    ex: &mut Exchange,
    up: &mut UpstreamStream,
    body: &mut Body,
    to_chunked: bool,
    s: &Settings,
    idle: std::time::Duration,
    reusable: &mut bool,
) -> Result<(), Failure> {
    let timeout = s.client_body_timeout;
    match body {
        Body::Length(rem) => {
            while *rem > 0 {
                conn.up_buf.clear();
                let n = io::read_more(up, &mut conn.up_buf, idle)
                    .await
                    .map_err(upstream_read_error)?;
                let take = (*rem).min(n as u64) as usize;
                if n > take {
                    *reusable = false;
                }
                io::write_range(&mut conn.stream, &mut conn.up_buf, 0..take, timeout)
                    .await
                    .map_err(client_gone)?;
                ex.bytes_out += take as u64;
                *rem -= take as u64;
            }
        }
        Body::Chunked(dec) => loop {
            conn.up_buf.clear();
            io::read_more(up, &mut conn.up_buf, idle)
                .await
                .map_err(upstream_read_error)?;
            conn.out.clear();
            let emit = if to_chunked {
                Emit::Chunked
            } else {
                Emit::Data
            };
            let d = dec
                .decode(&conn.up_buf, &mut conn.out, emit)
                .map_err(|e| Failure::after_response(ProxyError::UpstreamMalformed(e)))?;
            send(conn, ex, s).await?;
            if d.done {
                if d.consumed < conn.up_buf.len() {
                    *reusable = false;
                }
                break;
            }
        },
        Body::UntilClose => loop {
            conn.up_buf.clear();
            match io::read_more(up, &mut conn.up_buf, idle).await {
                Ok(n) => {
                    io::write_range(&mut conn.stream, &mut conn.up_buf, 0..n, timeout)
                        .await
                        .map_err(client_gone)?;
                    ex.bytes_out += n as u64;
                }
                Err(IoFail::Eof) => break,
                Err(e) => return Err(upstream_read_error(e)),
            }
        },
        Body::Done => {}
    }
    *body = Body::Done;
    Ok(())
}

/// Streams the response body through the stages that tap it (`ex.taps`): each piece of
/// decoded data goes to them, and what they let through or rewrote goes to the client
/// (chunked when `to_chunked`). `conn.up_buf` starts with the body bytes that came with the
/// head. The last piece is held back until the stages saw the end, so what they do at the
/// end (a cache storing the body) is done before the client has the whole response.
#[expect(
    clippy::too_many_arguments,
    reason = "the body's state and both ends; one call site"
)]
async fn tapped_body(
    conn: &mut Conn,
    ex: &mut Exchange,
    route: &RouteRt,
    up: &mut UpstreamStream,
    body: &mut Body,
    (to_chunked, reusable): (bool, &mut bool),
    s: &Settings,
    idle: std::time::Duration,
) -> Result<(), Failure> {
    let mut first = true;
    // `conn.tap_scratch` holds the last piece, framed and not yet sent
    let mut held = false;
    loop {
        if !first || conn.up_buf.is_empty() {
            if body.is_done() {
                break;
            }
            conn.up_buf.clear();
            match io::read_more(up, &mut conn.up_buf, idle).await {
                Ok(_) => {}
                Err(IoFail::Eof) if matches!(body, Body::UntilClose) => break,
                Err(e) => return Err(upstream_read_error(e)),
            }
        }
        first = false;
        // the piece of data: a range of `up_buf`, or decoded into `conn.out`
        conn.out.clear();
        let (range, decoded) = match body {
            Body::Length(rem) => {
                let take = (*rem).min(conn.up_buf.len() as u64) as usize;
                if conn.up_buf.len() > take {
                    *reusable = false;
                }
                *rem -= take as u64;
                (0..take, false)
            }
            Body::Chunked(dec) => {
                let d = dec
                    .decode(&conn.up_buf, &mut conn.out, Emit::Data)
                    .map_err(|e| Failure::after_response(ProxyError::UpstreamMalformed(e)))?;
                if d.done {
                    if d.consumed < conn.up_buf.len() {
                        *reusable = false;
                    }
                    *body = Body::Done;
                }
                (0..0, true)
            }
            Body::UntilClose => (0..conn.up_buf.len(), false),
            Body::Done => (0..0, false),
        };
        let data = if decoded {
            conn.out.as_slice()
        } else {
            conn.up_buf.get(range).unwrap_or_default()
        };
        let rewritten =
            route
                .pipeline
                .tap(Some(data), ex, &mut conn.tap_out, &mut conn.tap_scratch);
        let piece = if rewritten {
            conn.tap_out.as_slice()
        } else {
            data
        };
        frame(&mut conn.tap_scratch, piece, to_chunked);
        if body.is_done() {
            held = true;
            break;
        }
        emit(conn, ex, s).await?;
    }
    *body = Body::Done;
    let mut last = std::mem::take(&mut conn.tap_scratch);
    if !held {
        last.clear();
    }
    // the end: rewriting stages write out what they held back
    let rewritten = route
        .pipeline
        .tap(None, ex, &mut conn.tap_out, &mut conn.tap_scratch);
    let tail: &[u8] = if rewritten { &conn.tap_out } else { b"" };
    frame_onto(&mut last, tail, to_chunked);
    if to_chunked {
        last.extend_from_slice(LAST_CHUNK);
    }
    conn.tap_scratch = last;
    emit(conn, ex, s).await
}

/// `data` into `out` (cleared), as one chunk when `chunked`.
fn frame(out: &mut Vec<u8>, data: &[u8], chunked: bool) {
    out.clear();
    frame_onto(out, data, chunked);
}

/// `data` appended to `out`, as one chunk when `chunked`.
fn frame_onto(out: &mut Vec<u8>, data: &[u8], chunked: bool) {
    if data.is_empty() {
        return;
    }
    if chunked {
        write_chunk_size(out, data.len());
        out.extend_from_slice(data);
        out.extend_from_slice(CHUNK_END);
    } else {
        out.extend_from_slice(data);
    }
}

/// Writes `conn.tap_scratch` (a framed piece) to the client.
async fn emit(conn: &mut Conn, ex: &mut Exchange, s: &Settings) -> Result<(), Failure> {
    io::write_all(
        &mut conn.stream,
        &mut conn.tap_scratch,
        s.client_body_timeout,
    )
    .await
    .map_err(client_gone)?;
    ex.bytes_out += conn.tap_scratch.len() as u64;
    Ok(())
}
