//! The answer to one HTTP/2 stream: the HTTP/1.1 response the gateway writes (its own or an
//! upstream's, streamed) read back with the one parser and sent as HEADERS and DATA frames.
//! Hop-by-hop fields stay behind; the body is unframed (length, chunks, or until the end),
//! sent as the client's window allows: a window that stays shut past `send_timeout` resets
//! the stream (a zero-window stall holds nothing for long).

use std::io;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, SendStream};
use proto::{ChunkedDecoder, Emit, Framing, Limits, Method, ResponseHead, Status};

use crate::stream::Close;

/// Where the answer stands.
enum State {
    /// Waiting for the response head.
    Head(SendResponse<Bytes>),
    /// Sending the body.
    Body(SendStream<Bytes>, Left),
    /// Sent whole.
    Done,
    /// Reset, or the client went away.
    Broken,
}

/// What is left of the body.
enum Left {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

/// The sending side of a stream, fed HTTP/1.1 response bytes.
pub struct Reply {
    state: State,
    /// Bytes fed and not yet used.
    pending: Vec<u8>,
    head: ResponseHead,
    method: Method,
    limits: Limits,
    send_timeout: Duration,
}

fn broken(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, what)
}

impl Reply {
    /// The answer to a request with `method`, sent through `respond`.
    pub fn new(
        respond: SendResponse<Bytes>,
        method: Method,
        limits: Limits,
        send_timeout: Duration,
    ) -> Reply {
        Reply {
            state: State::Head(respond),
            pending: Vec::new(),
            head: ResponseHead::with_capacity(16),
            method,
            limits,
            send_timeout,
        }
    }

    /// Sent whole, or given up: nothing more will be sent.
    pub fn over(&self) -> bool {
        matches!(self.state, State::Done | State::Broken)
    }

    /// Sends what `data` completes of the response.
    pub async fn feed(&mut self, data: &[u8]) -> io::Result<()> {
        self.pending.extend_from_slice(data);
        loop {
            match &mut self.state {
                State::Head(_) => {
                    if !self.start()? {
                        return Ok(());
                    }
                }
                State::Body(send, left) => {
                    let p = &self.pending;
                    let mut trailers = None;
                    let (data, end, used) = match left {
                        Left::Length(rem) => {
                            let take = usize::try_from(*rem).unwrap_or(usize::MAX).min(p.len());
                            *rem -= take as u64;
                            let piece = p.get(..take).unwrap_or_default();
                            (Bytes::copy_from_slice(piece), *rem == 0, take)
                        }
                        Left::Chunked(dec) => {
                            let mut out = Vec::with_capacity(p.len());
                            let d = dec
                                .decode(p, &mut out, Emit::Data)
                                .map_err(|_| broken("malformed chunked response"))?;
                            if d.done {
                                trailers = fields(dec.trailers());
                            }
                            (Bytes::from(out), d.done, d.consumed)
                        }
                        Left::UntilClose => (Bytes::copy_from_slice(p), false, p.len()),
                    };
                    self.pending.drain(..used.min(self.pending.len()));
                    let last = end && trailers.is_none();
                    let mut sent = send_all(send, data, last, self.send_timeout).await;
                    if let (Ok(()), Some(t)) = (&sent, trailers) {
                        sent = send.send_trailers(t).map_err(|_| broken("stream closed"));
                    }
                    if let Err(e) = sent {
                        self.state = State::Broken;
                        return Err(e);
                    }
                    if end {
                        self.state = State::Done;
                        self.pending.clear();
                    }
                    return Ok(());
                }
                State::Done | State::Broken => {
                    self.pending.clear();
                    return Ok(());
                }
            }
        }
    }

    /// Parses a head from `pending` and sends it; false when it is not all there yet.
    fn start(&mut self) -> io::Result<bool> {
        let n = match proto::parse_response(&self.pending, &mut self.head, &self.limits) {
            Ok(Status::Complete(n)) => n,
            Ok(Status::Partial) => return Ok(false),
            Err(_) => return Err(self.give_up(Reason::INTERNAL_ERROR)),
        };
        let framing = proto::response_framing(self.method, &self.head);
        let status = self.head.status;
        let response = self.response(framing);
        self.pending.drain(..n.min(self.pending.len()));
        let State::Head(respond) = &mut self.state else {
            return Ok(true);
        };
        let Ok(response) = response else {
            return Err(self.give_up(Reason::INTERNAL_ERROR));
        };
        if status == 101 {
            // no upgrade on HTTP/2 (the request carried no Upgrade to ask for one)
            return Err(self.give_up(Reason::PROTOCOL_ERROR));
        }
        if status < 200 {
            // 100 Continue and 103 Early Hints pass on; the final head follows
            let _ = respond.send_informational(response);
            return Ok(true);
        }
        let left = match framing {
            Framing::Length(0) => None,
            Framing::Length(n) => Some(Left::Length(n)),
            Framing::Chunked => Some(Left::Chunked(ChunkedDecoder::new().keeping_trailers())),
            Framing::UntilClose => Some(Left::UntilClose),
        };
        self.state = match respond.send_response(response, left.is_none()) {
            Ok(send) => match left {
                Some(left) => State::Body(send, left),
                None => State::Done,
            },
            Err(_) => State::Broken,
        };
        match self.state {
            State::Broken => Err(broken("stream closed")),
            _ => Ok(true),
        }
    }

    /// The head parsed into `self.head`, without its hop-by-hop fields.
    fn response(&self, framing: Framing) -> Result<http::Response<()>, http::Error> {
        let (head, buf) = (&self.head, &self.pending);
        let mut b = http::Response::builder().status(head.status);
        for f in &head.fields {
            let keep_length =
                f.kind == proto::FieldKind::ContentLength && matches!(framing, Framing::Length(_));
            if (f.kind.is_hop_by_hop() && !keep_length)
                || proto::framing::named_by_connection(&head.fields, buf, f)
            {
                continue;
            }
            b = b.header(f.name.get(buf), f.value.get(buf));
        }
        b.body(())
    }

    /// Resets the stream with `reason`; the error the write that found it returns.
    fn give_up(&mut self, reason: Reason) -> io::Error {
        match std::mem::replace(&mut self.state, State::Broken) {
            State::Head(mut r) => r.send_reset(reason),
            State::Body(mut s, _) => s.send_reset(reason),
            State::Done | State::Broken => {}
        }
        broken("stream reset")
    }

    /// The exchange is over: a body sent until close ends here; an answer cut short resets
    /// the stream.
    pub async fn end(&mut self, how: Close) {
        match (&mut self.state, how) {
            (State::Body(send, Left::UntilClose), Close::Clean) => {
                let _ = send_all(send, Bytes::new(), true, self.send_timeout).await;
                self.state = State::Done;
            }
            (State::Done | State::Broken, _) => {}
            (_, Close::Clean) => {
                self.give_up(Reason::INTERNAL_ERROR);
            }
            (_, _) => {
                self.give_up(Reason::CANCEL);
            }
        }
    }

    /// Completes when the client resets the stream.
    pub async fn reset(&mut self) -> Option<Reason> {
        std::future::poll_fn(|cx| {
            let polled = match &mut self.state {
                State::Head(r) => r.poll_reset(cx),
                State::Body(s, _) => s.poll_reset(cx),
                State::Done | State::Broken => return Poll::Ready(None),
            };
            polled.map(Result::ok)
        })
        .await
    }
}

/// Trailer field lines (`name: value` CRLF each) as HTTP/2 trailers; `None` when there are
/// none (a field HTTP/2 cannot carry is left out).
fn fields(lines: &[u8]) -> Option<http::HeaderMap> {
    let mut map = http::HeaderMap::new();
    for line in lines.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let value = value.get(1..).unwrap_or_default().trim_ascii();
        let kind = proto::FieldKind::of(name);
        if kind.is_hop_by_hop() {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_bytes(value),
        ) {
            map.append(n, v);
        }
    }
    (!map.is_empty()).then_some(map)
}

/// Sends `data` on `send` as the window opens (`end`: the last of the body), waiting at most
/// `limit` for each opening.
async fn send_all(
    send: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
    limit: Duration,
) -> io::Result<()> {
    if data.is_empty() {
        return match end {
            true => send
                .send_data(data, true)
                .map_err(|_| broken("stream closed")),
            false => Ok(()),
        };
    }
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let room = std::future::poll_fn(|cx| send.poll_capacity(cx));
        let n = match crate::clock::timeout(limit, room).await {
            Ok(Some(Ok(n))) => n,
            Ok(Some(Err(_)) | None) => return Err(broken("stream closed")),
            Err(_) => {
                send.send_reset(Reason::CANCEL);
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client's window stayed shut",
                ));
            }
        };
        if n == 0 {
            continue;
        }
        let piece = data.split_to(n.min(data.len()));
        send.send_data(piece, end && data.is_empty())
            .map_err(|_| broken("stream closed"))?;
    }
    Ok(())
}
