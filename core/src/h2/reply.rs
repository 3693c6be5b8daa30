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
use proto::{Framing, Limits, Method, ResponseHead, Status};

use super::unframe::{Unframe, broken, send_all, send_piece};

use crate::stream::Close;

/// Where the answer stands.
enum State {
    /// Waiting for the response head.
    Head(SendResponse<Bytes>),
    /// Sending the body.
    Body(SendStream<Bytes>, Unframe),
    /// Sent whole.
    Done,
    /// Reset, or the client went away.
    Broken,
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
                    let piece = left.take(&self.pending)?;
                    let (end, used) = (piece.end, piece.used);
                    self.pending.drain(..used.min(self.pending.len()));
                    if let Err(e) = send_piece(send, piece, self.send_timeout).await {
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
        let left = Unframe::of(framing);
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
            (State::Body(send, Unframe::UntilClose), Close::Clean) => {
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
