//! HTTP/2 from the test's side: a real client (the `h2` crate on a tokio runtime of the
//! test's own, over plain TCP or rustls with ALPN `h2`) and raw frames written by hand for
//! the attacks, with a reader that reports the GOAWAY and RST_STREAM frames the gateway sends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;

use super::inproc::InProcess;
use super::origin::Origin;

/// One shard with an h2c listener (`addrs[1]`) routing everything to a new origin;
/// `server`: more `[server]` lines, `http2`: `[server.http2]` lines.
pub fn h2c_gateway(driver: &str, server: &str, http2: &str) -> Option<(InProcess, Origin)> {
    let origin = Origin::start();
    let rest = format!(
        "[server.http2]\n{http2}\n[[listener]]\naddress = \"127.0.0.1:0\"\nh2c = true\n{}",
        super::route_all(origin.addr, "")
    );
    let g = InProcess::start(driver, &format!("shards = 1\n{server}"), &rest)?;
    Some((g, origin))
}

/// A one-thread tokio runtime for a test's client side.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An HTTP/2 client with prior knowledge (h2c) on `addr`.
pub async fn connect(addr: SocketAddr) -> SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// An HTTP/2 client over TLS (ALPN `h2`) on `addr`, naming `sni`; the protocol the server
/// picked comes back too.
pub async fn connect_tls(
    addr: SocketAddr,
    sni: &str,
    mut config: rustls::ClientConfig,
) -> (SendRequest<Bytes>, Option<Vec<u8>>) {
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let (client, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    (client, alpn)
}

/// An answer as the client got it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    pub trailers: Option<http::HeaderMap>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends `request` (with `body`, if any) and reads the whole answer.
pub async fn call(
    client: &SendRequest<Bytes>,
    request: http::Request<()>,
    body: Option<Vec<u8>>,
) -> Result<Answer, h2::Error> {
    let mut c = client.clone().ready().await?;
    let (response, mut send) = c.send_request(request, body.is_none())?;
    if let Some(b) = body {
        send.send_data(Bytes::from(b), true)?;
    }
    let (parts, mut recv) = response.await?.into_parts();
    let mut out = Vec::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk?;
        let _ = recv.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    let trailers = recv.trailers().await?;
    Ok(Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: out,
        trailers,
    })
}

/// A GET of `path` on `authority`.
pub fn get(authority: &str, path: &str) -> http::Request<()> {
    http::Request::get(format!("http://{authority}{path}"))
        .body(())
        .unwrap()
}

// ---- raw frames ----

pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const PING: u8 = 6;
pub const GOAWAY: u8 = 7;
pub const CONTINUATION: u8 = 9;
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;
pub const PROTOCOL_ERROR: u32 = 0x1;
pub const CANCEL: u32 = 0x8;

/// One frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let l = (payload.len() as u32).to_be_bytes();
    let mut f = vec![l[1], l[2], l[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The preface and an empty SETTINGS, or one with `settings` (id, value).
pub fn preface(settings: &[(u16, u32)]) -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    let mut p = Vec::new();
    for (id, v) in settings {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    out.extend(frame(SETTINGS, 0, 0, &p));
    out
}

/// An HPACK integer with an `n`-bit prefix, the first byte's other bits `flags`.
pub fn hpack_int(out: &mut Vec<u8>, flags: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(flags | v as u8);
        return;
    }
    out.push(flags | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// An HPACK string, not Huffman-coded.
pub fn hpack_str(out: &mut Vec<u8>, s: &[u8]) {
    hpack_int(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

/// A header block for `GET path` on `authority` (static-table pseudo-headers, literals).
pub fn get_block(authority: &str, path: &str) -> Vec<u8> {
    let mut b = vec![0x82, 0x86]; // :method GET, :scheme http
    b.push(0x04); // :path, literal without indexing
    hpack_str(&mut b, path.as_bytes());
    b.push(0x01); // :authority
    hpack_str(&mut b, authority.as_bytes());
    b
}

/// A literal field without indexing.
pub fn literal(b: &mut Vec<u8>, name: &str, value: &[u8]) {
    b.push(0x00);
    hpack_str(b, name.as_bytes());
    hpack_str(b, value);
}

/// What the gateway sent on a raw connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// GOAWAY with this error code.
    GoAway(u32),
    /// RST_STREAM of this stream with this error code.
    Reset(u32, u32),
    /// HEADERS on this stream.
    Headers(u32),
    /// The connection closed.
    Closed,
}

/// A raw connection: written by the test, read by a thread that reports what matters.
pub struct Raw {
    pub tcp: TcpStream,
    pub seen: Receiver<Seen>,
}

impl Raw {
    /// Connects and sends `first` (the preface, usually).
    pub fn open(addr: SocketAddr, first: &[u8]) -> Raw {
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.set_nodelay(true).unwrap();
        tcp.write_all(first).unwrap();
        let mut reader = tcp.try_clone().unwrap();
        reader
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let (tx, seen) = channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut tmp = [0u8; 65536];
            loop {
                while buf.len() >= 9 {
                    let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
                    if buf.len() < 9 + len {
                        break;
                    }
                    let (kind, stream) =
                        (buf[3], u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]));
                    let p = &buf[9..9 + len];
                    let code =
                        |at: usize| u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
                    let event = match kind {
                        GOAWAY if len >= 8 => Some(Seen::GoAway(code(4))),
                        RST_STREAM if len == 4 => Some(Seen::Reset(stream, code(0))),
                        HEADERS => Some(Seen::Headers(stream)),
                        _ => None,
                    };
                    if let Some(e) = event {
                        let _ = tx.send(e);
                    }
                    buf.drain(..9 + len);
                }
                match reader.read(&mut tmp) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(Seen::Closed);
                        return;
                    }
                    Ok(n) => buf.extend_from_slice(&tmp[..n]),
                }
            }
        });
        Raw { tcp, seen }
    }

    /// Writes `bytes`; false once the gateway no longer takes them.
    pub fn send(&mut self, bytes: &[u8]) -> bool {
        self.tcp.write_all(bytes).is_ok()
    }

    /// The first GOAWAY code seen, waiting up to 10 s; then whether the connection closed.
    pub fn goaway(&self) -> (Option<u32>, bool) {
        let mut code = None;
        while let Ok(e) = self.seen.recv_timeout(Duration::from_secs(10)) {
            match e {
                Seen::GoAway(c) if code.is_none() => code = Some(c),
                Seen::Closed => return (code, true),
                _ => {}
            }
        }
        (code, false)
    }

    /// The next event other than HEADERS, waiting up to `limit`.
    pub fn next_not_headers(&self, limit: Duration) -> Option<Seen> {
        let end = std::time::Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            match self.seen.recv_timeout(left) {
                Ok(Seen::Headers(_)) => continue,
                Ok(e) => return Some(e),
                Err(_) => return None,
            }
        }
    }
}
