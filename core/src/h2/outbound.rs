//! One request to an HTTP/2 upstream as the byte stream the forwarding code writes and reads
//! (`Stream::H2Up`): writes are the HTTP/1.1 request it prepared (head, then body), parsed
//! with the one parser and sent on as HEADERS and DATA on a stream of a shared connection
//! (`upstream::mux`); reads give the answer back as HTTP/1.1: its status line and fields,
//! then its body, sized when the upstream gave a length, else chunked with the trailers in
//! the last chunk (so `grpc-status` reaches a client that takes trailers).

use std::io;
use std::time::Duration;

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::{Reason, RecvStream, SendStream};
use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut};
use proto::{FieldKind, Framing, Limits, RequestHead, Status};

use super::request::field;
use super::unframe::{Queue, Unframe, broken, send_piece};
use super::web::{self, Web};
use crate::stream::Close;

/// The request side.
enum Out {
    /// Waiting for the head; the connection to open the stream on.
    Head(SendRequest<Bytes>),
    /// Sending the body.
    Body(SendStream<Bytes>, Unframe),
    /// Sent whole.
    Done,
    /// Reset or refused.
    Broken,
}

/// The answer side.
enum In {
    /// No request yet.
    Idle,
    /// Waiting for the response head.
    Waiting(ResponseFuture),
    /// Receiving the body (`chunked`: passed on as chunks).
    Body(RecvStream, bool),
    /// Read whole.
    Done,
}

/// A request to an HTTP/2 upstream, seen as bytes.
pub struct Outbound {
    out: Out,
    answer: In,
    /// Request bytes written and not yet used.
    pending: Vec<u8>,
    head: RequestHead,
    limits: Limits,
    scheme: &'static str,
    /// Answer bytes for the next reads.
    inbound: Queue,
    send_timeout: Duration,
    /// A gRPC-Web call, translated at both edges.
    web: Option<Web>,
    /// Its `-text` request body, decoded as it goes.
    web_in: web::Decoder,
    /// Its `-text` answer body, encoded as it goes.
    web_out: web::Encoder,
    /// Counts the stream on its connection while it lives.
    _in_flight: crate::upstream::mux::InFlight,
}

impl Outbound {
    /// A request to open on `link` (`tls`: the https scheme), its head parsed with `limits`.
    pub fn new(
        link: SendRequest<Bytes>,
        tls: bool,
        limits: Limits,
        send_timeout: Duration,
        in_flight: crate::upstream::mux::InFlight,
    ) -> Outbound {
        Outbound {
            out: Out::Head(link),
            answer: In::Idle,
            pending: Vec::new(),
            head: RequestHead::with_capacity(limits.max_fields.min(64)),
            limits,
            scheme: if tls { "https" } else { "http" },
            inbound: Queue::default(),
            send_timeout,
            web: None,
            web_in: web::Decoder::default(),
            web_out: web::Encoder::default(),
            _in_flight: in_flight,
        }
    }

    /// Sends on what `buf` holds of the request.
    pub async fn write_all<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let res = {
            let data = crate::sys::written(&buf);
            let n = data.len();
            self.feed(data).await.map(|()| n)
        };
        (res, buf)
    }

    async fn feed(&mut self, data: &[u8]) -> io::Result<()> {
        self.pending.extend_from_slice(data);
        loop {
            match &mut self.out {
                Out::Head(_) => {
                    if !self.open().await? {
                        return Ok(());
                    }
                }
                Out::Body(send, left) => {
                    let mut piece = left.take(&self.pending)?;
                    let (end, used) = (piece.end, piece.used);
                    self.pending.drain(..used.min(self.pending.len()));
                    if self.web == Some(Web::Text) {
                        let decoded = self.web_in.decode(&piece.data);
                        let cut = end && self.web_in.unfinished();
                        let Some(decoded) = decoded.filter(|_| !cut) else {
                            send.send_reset(Reason::PROTOCOL_ERROR);
                            self.out = Out::Broken;
                            return Err(broken("a grpc-web-text body that is not base64"));
                        };
                        piece.data = Bytes::from(decoded);
                    }
                    if let Err(e) = send_piece(send, piece, self.send_timeout).await {
                        self.out = Out::Broken;
                        return Err(e);
                    }
                    if end {
                        self.out = Out::Done;
                    }
                    return Ok(());
                }
                Out::Done => {
                    self.pending.clear();
                    return Ok(());
                }
                Out::Broken => return Err(broken("stream reset")),
            }
        }
    }

    /// Parses the head in `pending` and opens the stream with it; false when it is not all
    /// there yet.
    async fn open(&mut self) -> io::Result<bool> {
        let n = match proto::parse_request(&self.pending, &mut self.head, &self.limits) {
            Ok(Status::Complete(n)) => n,
            Ok(Status::Partial) => return Ok(false),
            Err(_) => return Err(broken("unparsable request head")),
        };
        self.web = match crate::grpc::Flavor::of(&self.head, &self.pending) {
            crate::grpc::Flavor::Web => Some(Web::Binary),
            crate::grpc::Flavor::WebText => Some(Web::Text),
            crate::grpc::Flavor::Grpc | crate::grpc::Flavor::None => None,
        };
        let body = Unframe::of(self.head.framing);
        let request = self
            .request()
            .map_err(|_| broken("request HTTP/2 cannot carry"))?;
        self.pending.drain(..n.min(self.pending.len()));
        let Out::Head(link) = std::mem::replace(&mut self.out, Out::Broken) else {
            return Ok(true);
        };
        let mut link = link
            .ready()
            .await
            .map_err(|_| broken("connection closed"))?;
        let (answer, send) = link
            .send_request(request, body.is_none())
            .map_err(|_| broken("connection closed"))?;
        self.answer = In::Waiting(answer);
        self.out = match body {
            Some(b) => Out::Body(send, b),
            None => Out::Done,
        };
        Ok(true)
    }

    /// The parsed head as an HTTP/2 request: `Host` becomes `:authority`, hop-by-hop fields
    /// stay behind, `te: trailers` says trailers are welcome (gRPC servers ask for it).
    fn request(&self) -> Result<http::Request<()>, http::Error> {
        let (head, buf) = (&self.head, &self.pending);
        let authority = head.value_of(buf, b"host").unwrap_or_default();
        let target = head.target.get(buf);
        let mut uri = Vec::with_capacity(self.scheme.len() + 3 + authority.len() + target.len());
        uri.extend_from_slice(self.scheme.as_bytes());
        uri.extend_from_slice(b"://");
        uri.extend_from_slice(authority);
        uri.extend_from_slice(target);
        let mut b = http::Request::builder()
            .method(head.method_span.get(buf))
            .uri(uri);
        for f in &head.fields {
            if f.kind.is_hop_by_hop()
                || f.kind == FieldKind::Host
                || proto::framing::named_by_connection(&head.fields, buf, f)
            {
                continue;
            }
            let (name, value) = (f.name.get(buf), f.value.get(buf));
            if self.web.is_some() && name.eq_ignore_ascii_case(b"content-type") {
                b = b.header(name, web::grpc_content_type(value));
                continue;
            }
            b = b.header(name, value);
        }
        // a -text body shrinks as it is decoded: its length goes unsaid
        if let Framing::Length(n) = head.framing
            && n > 0
            && self.web != Some(Web::Text)
        {
            b = b.header("content-length", n);
        }
        b.header("te", "trailers").body(())
    }

    /// Reads what the answer has next (0 once it is all read).
    pub async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        loop {
            if let Some(n) = self.inbound.give(&mut buf) {
                return (Ok(n), buf);
            }
            if let Err(e) = self.next().await {
                return (Err(e), buf);
            }
            if matches!(self.answer, In::Done | In::Idle) && self.inbound.is_empty() {
                return (Ok(0), buf);
            }
        }
    }

    /// Moves the answer on by one step into `inbound`.
    async fn next(&mut self) -> io::Result<()> {
        match &mut self.answer {
            In::Idle | In::Done => Ok(()),
            In::Waiting(answer) => {
                let response = answer.await.map_err(reset)?;
                let (parts, body) = response.into_parts();
                let ended = body.is_end_stream();
                let chunked = write_head(&parts, ended, self.web, self.inbound.raw());
                self.answer = match ended {
                    true => In::Done,
                    false => In::Body(body, chunked),
                };
                Ok(())
            }
            In::Body(body, chunked) => {
                let chunked = *chunked;
                match body.data().await {
                    Some(Ok(data)) => {
                        let _ = body.flow_control().release_capacity(data.len());
                        match self.web {
                            Some(Web::Text) => {
                                let text = self.web_out.encode(&data, false);
                                self.inbound.push_data(&text, chunked);
                            }
                            _ => self.inbound.push_data(&data, chunked),
                        }
                        Ok(())
                    }
                    Some(Err(e)) => Err(reset(e)),
                    None => {
                        let trailers = body.trailers().await.map_err(reset)?;
                        if let Some(w) = self.web {
                            // gRPC-Web: the trailers are the body's last frame
                            let frame = web::trailer_frame(trailers.as_ref());
                            let frame = match w {
                                Web::Text => self.web_out.encode(&frame, true),
                                Web::Binary => frame,
                            };
                            self.inbound.push_data(&frame, chunked);
                            self.inbound.push(b"0\r\n\r\n");
                        } else if chunked {
                            let out = self.inbound.raw();
                            out.extend_from_slice(b"0\r\n");
                            for (name, value) in trailers.iter().flatten() {
                                field(out, name.as_str().as_bytes(), value.as_bytes());
                            }
                            out.extend_from_slice(b"\r\n");
                        }
                        self.answer = In::Done;
                        Ok(())
                    }
                }
            }
        }
    }

    /// The exchange is over: what is still open of the stream is reset.
    pub fn shutdown(&mut self, _how: Close) {
        if let Out::Body(send, _) = &mut self.out {
            send.send_reset(Reason::CANCEL);
        }
        self.out = Out::Done;
        self.answer = In::Done;
    }
}

/// The error of a stream the upstream reset or a connection that ended.
fn reset(e: h2::Error) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, e.to_string())
}

/// Writes an HTTP/2 response head as HTTP/1.1 into `out`; `ended`: the stream ended with it;
/// `web`: for a gRPC-Web call (its content-type, and a body that grows by the trailer frame).
/// True when the body follows chunked (no length given).
fn write_head(
    parts: &http::response::Parts,
    ended: bool,
    web: Option<Web>,
    out: &mut Vec<u8>,
) -> bool {
    let status = parts.status;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut sized = false;
    for (name, value) in &parts.headers {
        match (name, web) {
            (&http::header::CONTENT_TYPE, Some(w)) => {
                field(out, b"content-type", w.content_type().as_bytes());
                continue;
            }
            (&http::header::CONTENT_LENGTH, Some(_)) => continue,
            (&http::header::CONTENT_LENGTH, None) => sized = true,
            _ => {}
        }
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    let chunked = !ended && !sized;
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    } else if ended && !sized {
        out.extend_from_slice(b"content-length: 0\r\n");
    }
    out.extend_from_slice(b"\r\n");
    chunked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(b: http::response::Builder, ended: bool) -> (String, bool) {
        let parts = b.body(()).unwrap().into_parts().0;
        let mut out = Vec::new();
        let chunked = write_head(&parts, ended, None, &mut out);
        (String::from_utf8(out).unwrap(), chunked)
    }

    #[test]
    fn heads_say_how_their_body_follows() {
        let grpc = http::Response::builder()
            .status(200)
            .header("content-type", "application/grpc");
        let (text, chunked) = head(grpc, false);
        assert!(chunked);
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        let sized = http::Response::builder()
            .status(404)
            .header("content-length", "5");
        assert_eq!(
            head(sized, false),
            (
                "HTTP/1.1 404 Not Found\r\ncontent-length: 5\r\n\r\n".into(),
                false
            )
        );
        // trailers-only (a gRPC error): the status travels in the head, no body
        let only = http::Response::builder()
            .status(200)
            .header("grpc-status", "5");
        let (text, chunked) = head(only, true);
        assert!(!chunked);
        assert!(
            text.ends_with("grpc-status: 5\r\ncontent-length: 0\r\n\r\n"),
            "{text}"
        );
    }
}
