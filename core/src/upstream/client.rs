//! A small HTTP/1.1 client over our own parser, for requests the gateway makes itself (JWKS
//! fetches today; health checks and composition later): one request per connection, the
//! whole answer read within one deadline and bounded in size.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proto::{ChunkedDecoder, Emit, Framing, Limits, Method, ParseError, ResponseHead, Status};

use rustls::pki_types::ServerName;

use crate::io::{self, IoFail};
use crate::stream::UpstreamStream;
use crate::tls::UpstreamTls;

/// A request to send.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Method token.
    pub method: &'a str,
    /// Origin-form target.
    pub target: &'a str,
    /// Host field value.
    pub host: &'a str,
    /// More field lines (`Name: value\r\n`).
    pub fields: &'a [u8],
    /// Body (sent with Content-Length when not empty).
    pub body: &'a [u8],
}

/// A whole answer.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// The head as received (status line and fields, with its empty line).
    pub head: Vec<u8>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

/// Why a request made by the gateway failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// Connecting failed or timed out.
    Connect,
    /// No whole answer within the deadline.
    Timeout,
    /// The peer closed or reset the connection before the answer ended.
    Closed,
    /// The answer is not HTTP/1.1 we accept.
    Malformed(ParseError),
    /// The body is larger than allowed.
    TooLarge(usize),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect => f.write_str("cannot connect"),
            ClientError::Timeout => f.write_str("no complete answer in time"),
            ClientError::Closed => f.write_str("closed before the answer ended"),
            ClientError::Malformed(e) => write!(f, "bad answer: {e}"),
            ClientError::TooLarge(n) => write!(f, "answer larger than {n} bytes"),
        }
    }
}

/// Sends `req` to `addr` (over TLS with `tls`: config and the name verified) and reads the
/// answer, all within `timeout`, refusing bodies over `max_body` bytes.
pub async fn send(
    addr: SocketAddr,
    req: &Request<'_>,
    max_body: usize,
    timeout: Duration,
    tls: Option<(&UpstreamTls, &ServerName<'static>)>,
) -> Result<Response, ClientError> {
    let mut out = Vec::with_capacity(256 + req.fields.len() + req.body.len());
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    proto::write::put_field(&mut out, b"Host", req.host.as_bytes());
    out.extend_from_slice(req.fields);
    if !req.body.is_empty() {
        proto::write::put_content_length(&mut out, req.body.len() as u64);
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(req.body);
    let method = Method::from_bytes(req.method.as_bytes());
    let limits = Deadlines {
        connect: timeout,
        whole: timeout,
    };
    send_bytes(addr, out, method, max_body, limits, true, tls).await
}

/// How long a request made with `send_bytes` may take.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// To connect.
    pub connect: Duration,
    /// For all of it, the connect included.
    pub whole: Duration,
}

/// Sends `request` (a whole request: head and body, for `method`) to `addr` on a new
/// connection (TLS with `tls`) and reads the answer, refusing bodies over `max_body` bytes.
pub async fn send_bytes(
    addr: SocketAddr,
    mut request: Vec<u8>,
    method: Method,
    max_body: usize,
    limits: Deadlines,
    nodelay: bool,
    tls: Option<(&UpstreamTls, &ServerName<'static>)>,
) -> Result<Response, ClientError> {
    let deadline = Instant::now() + limits.whole;
    let mut stream = crate::upstream::connect::connect(addr, limits.connect, nodelay, tls)
        .await
        .map_err(|_| ClientError::Connect)?;
    io::write_all(&mut stream, &mut request, left(deadline)?)
        .await
        .map_err(fail)?;
    read_response(&mut stream, method, max_body, deadline)
        .await
        .map(|(r, _)| r)
}

/// Sends `request` on `stream` (a pooled or new connection) and reads the answer by
/// `deadline`; true with it when the connection may serve another request.
pub async fn exchange_on(
    stream: &mut UpstreamStream,
    request: &mut Vec<u8>,
    method: Method,
    max_body: usize,
    deadline: Instant,
) -> Result<(Response, bool), ClientError> {
    io::write_all(stream, request, left(deadline)?)
        .await
        .map_err(fail)?;
    read_response(stream, method, max_body, deadline).await
}

fn left(deadline: Instant) -> Result<Duration, ClientError> {
    let d = deadline.saturating_duration_since(Instant::now());
    if d.is_zero() {
        Err(ClientError::Timeout)
    } else {
        Ok(d)
    }
}

fn fail(e: IoFail) -> ClientError {
    match e {
        IoFail::Timeout => ClientError::Timeout,
        _ => ClientError::Closed,
    }
}

/// Reads more into `buf` (growing it when full); true at end of stream.
async fn fill(
    stream: &mut UpstreamStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<bool, ClientError> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(16 * 1024);
    }
    match io::read_more(stream, buf, left(deadline)?).await {
        Ok(_) => Ok(false),
        Err(IoFail::Eof) => Ok(true),
        Err(e) => Err(fail(e)),
    }
}

async fn read_response(
    stream: &mut UpstreamStream,
    method: Method,
    max_body: usize,
    deadline: Instant,
) -> Result<(Response, bool), ClientError> {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut head = ResponseHead::with_capacity(64);
    let limits = Limits::default();
    let mut eof = false;
    let head_len = loop {
        match proto::parse_response(&buf, &mut head, &limits) {
            // interim answers are skipped
            Ok(Status::Complete(n)) if head.status < 200 => {
                buf.drain(..n);
                continue;
            }
            Ok(Status::Complete(n)) => break n,
            Ok(Status::Partial) if eof => return Err(ClientError::Closed),
            Ok(Status::Partial) => {}
            Err(e) => return Err(ClientError::Malformed(e)),
        }
        eof = fill(stream, &mut buf, deadline).await?;
    };
    let framing = proto::response_framing(method, &head);
    let mut body = Vec::new();
    let mut pos = head_len;
    let mut chunked = ChunkedDecoder::with_limit(max_body as u64);
    loop {
        let avail = buf.get(pos..).unwrap_or_default();
        match framing {
            Framing::Length(n) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if n > max_body {
                    return Err(ClientError::TooLarge(max_body));
                }
                if avail.len() >= n {
                    body.extend_from_slice(avail.get(..n).unwrap_or_default());
                    pos += n;
                    break;
                }
            }
            Framing::Chunked => {
                let d = chunked
                    .decode(avail, &mut body, Emit::Data)
                    .map_err(|e| match e {
                        ParseError::BodyTooLarge => ClientError::TooLarge(max_body),
                        e => ClientError::Malformed(e),
                    })?;
                pos += d.consumed;
                if d.done {
                    break;
                }
            }
            Framing::UntilClose if eof => {
                body.extend_from_slice(avail);
                pos = buf.len() + 1;
                break;
            }
            Framing::UntilClose => {}
        }
        if body.len() > max_body || buf.len() - head_len > max_body.saturating_add(64 * 1024) {
            return Err(ClientError::TooLarge(max_body));
        }
        if eof {
            return Err(ClientError::Closed);
        }
        eof = fill(stream, &mut buf, deadline).await?;
    }
    if body.len() > max_body {
        return Err(ClientError::TooLarge(max_body));
    }
    // reusable: the answer ended where the bytes did, and the peer keeps the connection
    // (HTTP/1.1 without `close`, HTTP/1.0 only with `keep-alive`)
    let reusable = pos == buf.len() && !eof && head.keep_alive();
    buf.truncate(head_len);
    Ok((
        Response {
            status: head.status,
            head: buf,
            body,
        },
        reusable,
    ))
}
