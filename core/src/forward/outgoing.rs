//! The request going upstream: its head and the body bytes already read, assembled once for
//! every attempt, and the rest of the body streamed from the client (bounded, re-chunked),
//! watching for an upstream that answers before the body is all sent.

use policy::Exchange;
use proto::{ChunkedDecoder, Emit, Framing};

use super::Failure;
use crate::answer::send_continue;
use crate::body::Buffered;
use crate::conn::Conn;
use crate::error::ProxyError;
use crate::gateway::{Settings, UpstreamRt};
use crate::headers::write_request_head;
use crate::io::{self, IoFail};
use crate::stream::{Ready, Transport, UpstreamStream};

/// A body still to be moved (request or response).
pub(super) enum Body {
    /// Everything moved.
    Done,
    /// This many bytes to go.
    Length(u64),
    /// Chunked, mid-way (the decoder refuses sizes past the body limit).
    Chunked(ChunkedDecoder),
    /// Until the upstream closes.
    UntilClose,
}

impl Body {
    pub(super) fn is_done(&self) -> bool {
        matches!(self, Body::Done | Body::Length(0))
    }
}

/// The request as prepared for attempts: `conn.out` holds its head and every body byte read
/// so far, and stays intact while no body byte beyond it was sent (so an attempt can be
/// repeated).
pub(super) struct Outgoing {
    /// What is left of the body after the bytes in `conn.out`.
    pub body: Body,
    /// The method may be sent twice (RFC 9110 §9.2.2).
    pub idempotent: bool,
    /// The whole request (head and body) was in `conn.out` before the first attempt, so an
    /// attempt can be repeated. Fixed once prepared: streaming the body empties `conn.out`.
    replayable: bool,
    /// The client sent `Expect: 100-continue`.
    pub expect_continue: bool,
    /// `100 Continue` was sent to the client.
    pub sent_continue: bool,
    /// Where the Host value is in `conn.out`.
    host: crate::headers::HostValue,
    /// The deadlines of this exchange's attempts.
    pub timeouts: crate::gateway::Timeouts,
}

impl Outgoing {
    /// Writes the request head and the body bytes already read into `conn.out` and consumes
    /// them from `conn.buf`. When the body has started but no byte of it is here yet, waits
    /// for the first ones (answering `Expect: 100-continue` first), so a client that
    /// announces a body and sends nothing never ties up an upstream connection.
    pub(super) async fn prepare(
        conn: &mut Conn,
        ex: &mut Exchange,
        up: &UpstreamRt,
        head_len: usize,
        s: &Settings,
        pre: Option<Buffered>,
        timeouts: crate::gateway::Timeouts,
    ) -> Result<Outgoing, Failure> {
        let target = ex.upstream.target.unwrap_or(0);
        conn.out.clear();
        let host = write_request_head(
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
                return Err(Failure::before_response(
                    ProxyError::ClientBodyTooLarge,
                    false,
                ));
            }
            Framing::Length(n) => Body::Length(n),
            // a chunk size past the limit is refused on its size line (413), before its data
            Framing::Chunked => Body::Chunked(ChunkedDecoder::with_limit(max_body)),
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
        ex.bytes_in += consumed as u64;
        let mut out = Outgoing {
            body,
            idempotent: conn.head.method.is_idempotent(),
            replayable: false,
            expect_continue: conn.head.expect_continue,
            sent_continue: false,
            host,
            timeouts,
        };
        if !out.body.is_done() && consumed == 0 {
            out.continue_if_asked(conn, s).await?;
            io::read_more(&mut conn.stream, &mut conn.buf, s.client_body_timeout)
                .await
                .map_err(client_read_error)?;
            let c = take_buffered(&conn.buf, &mut out.body, &mut conn.out)?;
            conn.buf.drain(..c.min(conn.buf.len()));
            ex.bytes_in += c as u64;
        }
        out.replayable = out.body.is_done();
        Ok(out)
    }

    /// Whether the whole request is in `conn.out` (so it can go again, to any target).
    pub(super) fn replayable(&self) -> bool {
        self.replayable
    }

    /// Re-addresses the prepared request in `out` to a new target: its Host value when it
    /// named the old one.
    pub(super) fn readdress(&mut self, out: &mut Vec<u8>, host: &[u8]) {
        if !self.host.of_target || out.get(self.host.at.clone()).is_none() {
            return;
        }
        out.splice(self.host.at.clone(), host.iter().copied());
        self.host.at = self.host.at.start..self.host.at.start + host.len();
    }

    /// Whether an attempt may be repeated: all of the request was in `conn.out` from the start
    /// (no body byte was streamed past it) and the method is idempotent.
    pub(super) fn can_retry(&self) -> bool {
        self.replayable && self.idempotent
    }

    /// Sends `100 Continue` if the client asked and it was not sent yet.
    pub(super) async fn continue_if_asked(
        &mut self,
        conn: &mut Conn,
        s: &Settings,
    ) -> Result<(), Failure> {
        if self.expect_continue && !self.sent_continue {
            self.sent_continue = true;
            send_continue(conn, s.client_body_timeout)
                .await
                .map_err(|e| Failure::before_response(e, false))?;
        }
        Ok(())
    }

    /// Streams the rest of the request body from the client to `up`. Returns false when the
    /// upstream answered before it was all sent (looked for before each piece, and when a
    /// write fails): that answer, already started in `conn.up_buf`, is then relayed.
    pub(super) async fn send_rest(
        &mut self,
        conn: &mut Conn,
        ex: &mut Exchange,
        up: &mut UpstreamStream,
        s: &Settings,
    ) -> Result<bool, Failure> {
        // A body is streaming: read it in `client_buffer`-sized pieces, not the head buffer.
        if conn.buf.capacity() < s.client_buffer {
            conn.buf.reserve_exact(s.client_buffer - conn.buf.len());
        }
        loop {
            if self.body.is_done() {
                self.body = Body::Done;
                return Ok(true);
            }
            if conn.buf.is_empty() {
                io::read_more(&mut conn.stream, &mut conn.buf, s.client_body_timeout)
                    .await
                    .map_err(client_read_error)?;
            }
            let sent = match &mut self.body {
                Body::Length(rem) => {
                    let take = (*rem).min(conn.buf.len() as u64) as usize;
                    if answered_early(up, &mut conn.up_buf) {
                        return Ok(false);
                    }
                    let r = io::write_range(up, &mut conn.buf, 0..take, self.timeouts.idle).await;
                    conn.buf.drain(..take.min(conn.buf.len()));
                    *rem -= take as u64;
                    ex.bytes_in += take as u64;
                    r
                }
                body @ Body::Chunked(_) => {
                    conn.out.clear();
                    let c = take_buffered(&conn.buf, body, &mut conn.out)?;
                    conn.buf.drain(..c.min(conn.buf.len()));
                    ex.bytes_in += c as u64;
                    if answered_early(up, &mut conn.up_buf) {
                        return Ok(false);
                    }
                    io::write_all(up, &mut conn.out, self.timeouts.idle).await
                }
                Body::Done | Body::UntilClose => Ok(()),
            };
            if let Err(e) = sent {
                return if answered_early(up, &mut conn.up_buf) {
                    Ok(false)
                } else {
                    Err(upstream_write_error(e))
                };
            }
        }
    }
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
        Body::Chunked(dec) => {
            let d = dec
                .decode(avail, out, Emit::Chunked)
                .map_err(|e| Failure::before_response(ProxyError::ClientMalformed(e), false))?;
            if d.done {
                *body = Body::Done;
            }
            Ok(d.consumed)
        }
        Body::Done | Body::UntilClose => Ok(0),
    }
}

/// True when the upstream has already answered (or closed, or reset) while the request body
/// is still going out: what it sent is read into `up_buf` (where the response head is read
/// from next) and holds more than interim (`1xx`) answers.
fn answered_early(up: &mut UpstreamStream, up_buf: &mut Vec<u8>) -> bool {
    match up.read_ready(up_buf) {
        Ready::Eof | Ready::Error => true,
        Ready::Data(_) | Ready::Nothing => holds_final_answer(up_buf),
    }
}

/// True when `buf` starts with anything but complete or partial interim answers.
fn holds_final_answer(buf: &[u8]) -> bool {
    let mut rest = buf;
    loop {
        if rest.is_empty() {
            return false;
        }
        // "HTTP/1.1 1xx": an interim answer; the upstream still wants the body
        let interim = b"HTTP/1.1 1";
        let n = rest.len().min(interim.len());
        let prefix_ok = rest
            .iter()
            .zip(interim)
            .enumerate()
            .take(n)
            .all(|(i, (a, b))| a == b || (i == 7 && *a == b'0'));
        if !prefix_ok {
            return true;
        }
        if rest.len() < interim.len() {
            return false;
        }
        match memchr::memmem::find(rest, b"\r\n\r\n") {
            Some(end) => rest = rest.get(end + 4..).unwrap_or_default(),
            None => return false,
        }
    }
}

pub(super) fn client_read_error(e: IoFail) -> Failure {
    Failure::before_response(
        match e {
            IoFail::Timeout => ProxyError::ClientBodyTimeout,
            _ => ProxyError::ClientGone,
        },
        false,
    )
}

fn upstream_write_error(e: IoFail) -> Failure {
    Failure::before_response(
        match e {
            IoFail::Timeout => ProxyError::UpstreamTimeout,
            _ => ProxyError::UpstreamClosed,
        },
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::holds_final_answer;

    #[test]
    fn only_interim_answers_let_the_body_go_on() {
        let table: &[(&[u8], bool)] = &[
            (b"", false),
            (b"HTTP/1.1 1", false),
            (b"HTT", false),
            (b"HTTP/1.1 100 Continue\r\n", false),
            (b"HTTP/1.1 100 Continue\r\n\r\n", false),
            (b"HTTP/1.0 102 Processing\r\n\r\nHTTP/1.1 1", false),
            (
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 413 Too Large\r\n",
                true,
            ),
            (b"HTTP/1.1 413", true),
            (b"HTTP/1.1 2", true),
            (b"garbage", true),
            (b"X", true),
        ];
        for (bytes, want) in table {
            assert_eq!(
                holds_final_answer(bytes),
                *want,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}
