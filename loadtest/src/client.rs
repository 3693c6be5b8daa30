//! One client connection of the load generator: writes a pre-rendered request and reads the
//! whole response (Content-Length, chunked, or close-delimited body), discarding the body.
//! httparse reads the heads, so the generator never shares a parser with the gateway it measures.

use std::net::SocketAddr;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use monoio_rustls::ClientTlsStream;

use crate::tls::TlsPlan;

/// Read buffer size; also the largest response head accepted.
const BUF: usize = 64 * 1024;

/// Why an exchange failed (a response that arrived whole is never an error here, whatever its
/// status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Reset, refused mid-way, closed before the response ended, or a write error.
    Reset,
    /// The response could not be parsed.
    Protocol,
}

/// What one exchange returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// Status code of the final response.
    pub status: u16,
    /// Body bytes received.
    pub body_bytes: u64,
    /// The connection may carry another request.
    pub reusable: bool,
}

/// A connected client over a plain (`TcpStream`) or TLS stream.
pub struct Conn<S = TcpStream> {
    stream: S,
    buf: Vec<u8>,
}

/// How the response body is delimited.
enum Body {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

impl Conn<TcpStream> {
    /// Connects to `addr` with TCP_NODELAY.
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(BUF),
        })
    }
}

impl Conn<ClientTlsStream<TcpStream>> {
    /// Connects to `addr` and runs the TLS handshake of `tls`.
    pub async fn connect_tls(addr: SocketAddr, tls: &TlsPlan) -> std::io::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let stream = tls
            .connector
            .connect(tls.name.clone(), tcp)
            .await
            .map_err(std::io::Error::other)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(BUF),
        })
    }
}

impl<S: AsyncReadRent + AsyncWriteRent> Conn<S> {
    /// Sends `request` (taken and handed back, so it is never copied) and reads the response.
    /// `head_only` is set for HEAD requests, whose responses carry no body.
    pub async fn exchange(
        &mut self,
        request: Vec<u8>,
        head_only: bool,
    ) -> (Result<Response, Failure>, Vec<u8>) {
        let (r, request) = self.stream.write_all(request).await;
        if r.is_err() {
            return (Err(Failure::Reset), request);
        }
        (self.read_response(head_only).await, request)
    }

    async fn fill(&mut self) -> Result<usize, Failure> {
        if self.buf.len() == self.buf.capacity() {
            return Err(Failure::Protocol);
        }
        let len = self.buf.len();
        let cap = self.buf.capacity();
        let buf = std::mem::take(&mut self.buf);
        let (r, b) = self.stream.read(buf.slice_mut(len..cap)).await;
        self.buf = b.into_inner();
        r.map_err(|_| Failure::Reset)
    }

    async fn read_response(&mut self, head_only: bool) -> Result<Response, Failure> {
        loop {
            let (status, head_len, body, close) = loop {
                let mut headers = [httparse::EMPTY_HEADER; 64];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&self.buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let status = resp.code.unwrap_or(0);
                        let (body, close) = framing(&resp, head_only)?;
                        break (status, n, body, close);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(_) => return Err(Failure::Protocol),
                }
                if self.fill().await? == 0 {
                    return Err(Failure::Reset);
                }
            };
            self.buf.drain(..head_len);
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            let body_bytes = match body {
                Body::Empty => 0,
                Body::Length(n) => self.skip(n).await?,
                Body::Chunked => self.skip_chunked().await?,
                Body::UntilClose => self.skip_until_close().await?,
            };
            return Ok(Response {
                status,
                body_bytes,
                reusable: !close && !matches!(body, Body::UntilClose),
            });
        }
    }

    /// Discards `n` body bytes.
    async fn skip(&mut self, n: u64) -> Result<u64, Failure> {
        let mut left = n;
        loop {
            let have = (self.buf.len() as u64).min(left);
            self.buf.drain(..have as usize);
            left -= have;
            if left == 0 {
                return Ok(n);
            }
            if self.fill().await? == 0 {
                return Err(Failure::Reset);
            }
        }
    }

    /// Discards a chunked body and its trailer section.
    async fn skip_chunked(&mut self) -> Result<u64, Failure> {
        let mut total = 0;
        loop {
            let (consumed, size) = loop {
                match httparse::parse_chunk_size(&self.buf) {
                    Ok(httparse::Status::Complete(c)) => break c,
                    Ok(httparse::Status::Partial) => {}
                    Err(_) => return Err(Failure::Protocol),
                }
                if self.fill().await? == 0 {
                    return Err(Failure::Reset);
                }
            };
            self.buf.drain(..consumed);
            if size == 0 {
                break;
            }
            total += self.skip(size).await?;
            self.expect_crlf().await?;
        }
        // trailer section: field lines until an empty line
        loop {
            let line_end = loop {
                if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                if self.fill().await? == 0 {
                    return Err(Failure::Reset);
                }
            };
            self.buf.drain(..line_end + 2);
            if line_end == 0 {
                return Ok(total);
            }
        }
    }

    async fn expect_crlf(&mut self) -> Result<(), Failure> {
        while self.buf.len() < 2 {
            if self.fill().await? == 0 {
                return Err(Failure::Reset);
            }
        }
        if self.buf.get(..2) != Some(b"\r\n") {
            return Err(Failure::Protocol);
        }
        self.buf.drain(..2);
        Ok(())
    }

    async fn skip_until_close(&mut self) -> Result<u64, Failure> {
        let mut total = 0;
        loop {
            total += self.buf.len() as u64;
            self.buf.clear();
            if self.fill().await? == 0 {
                return Ok(total);
            }
        }
    }
}

/// Body framing of a response (RFC 9112 §6.3) and whether the server closes after it.
fn framing(resp: &httparse::Response<'_, '_>, head_only: bool) -> Result<(Body, bool), Failure> {
    let status = resp.code.unwrap_or(0);
    let mut close = resp.version == Some(0);
    let mut length = None;
    let mut chunked = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if v.split(',').any(|t| t.trim() == "close") {
                close = true;
            }
            if v.split(',').any(|t| t.trim() == "keep-alive") {
                close = false;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or(Failure::Protocol)?;
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .trim_end()
                .ends_with("chunked");
        }
    }
    let body = if head_only || (100..200).contains(&status) || status == 204 || status == 304 {
        Body::Empty
    } else if chunked {
        Body::Chunked
    } else if let Some(n) = length {
        Body::Length(n)
    } else {
        Body::UntilClose
    };
    Ok((body, close))
}
