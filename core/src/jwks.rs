//! Background fetch of JWKS documents for the jwt stage's `jwks_url`: one task per feed on
//! each shard's own runtime (no cross-shard state), fetching at start, every `interval`, and
//! soon after a token names an unknown `kid`. A failed fetch keeps the last good key set.

use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use policy::stages::jwt::JwksFeed;
use proto::{ChunkedDecoder, Framing, Limits, Method, ResponseHead, Status};

use crate::forward::reencode;
use crate::io::{self, IoFail};
use crate::shard::Shard;

/// Largest JWKS document accepted.
const MAX_DOCUMENT: usize = 1 << 20;
/// Connect plus whole-response deadline.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the task looks at `wanted`.
const POLL: Duration = Duration::from_millis(100);

/// Keeps `feed` fresh until the shard drains.
pub async fn keep_fresh(shard: Rc<Shard>, feed: Rc<JwksFeed>) {
    let mut next = Instant::now();
    let mut last_error = String::new();
    while !shard.draining.get() {
        if Instant::now() >= next || feed.wanted.get() {
            feed.wanted.set(false);
            let outcome = match monoio::time::timeout(FETCH_TIMEOUT, fetch(&feed)).await {
                Ok(Ok(body)) => feed.install(&body, Instant::now()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!("no complete answer within {FETCH_TIMEOUT:?}")),
            };
            match outcome {
                Ok(n) => {
                    if !last_error.is_empty() || shard.id == 0 {
                        crate::log!(
                            Info,
                            "shard {}: jwks_url http://{}{}: {n} keys",
                            shard.id,
                            feed.host,
                            feed.path
                        );
                    }
                    last_error.clear();
                }
                Err(e) => {
                    // say it once per change, not on every retry
                    if e != last_error {
                        crate::log!(
                            Warn,
                            "shard {}: jwks_url http://{}{}: {e}; keeping the last good keys",
                            shard.id,
                            feed.host,
                            feed.path
                        );
                    }
                    last_error = e;
                }
            }
            next = Instant::now() + feed.interval;
        }
        monoio::time::sleep(POLL).await;
    }
}

/// One GET of the feed's URL; the body of a 200 answer.
async fn fetch(feed: &JwksFeed) -> Result<Vec<u8>, String> {
    let mut stream = TcpStream::connect(feed.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", feed.addr))?;
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        feed.path, feed.host
    )
    .into_bytes();
    io::write_all(&mut stream, &mut request, FETCH_TIMEOUT)
        .await
        .map_err(|e| format!("send: {e:?}"))?;
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut eof = false;
    let mut head = ResponseHead::with_capacity(64);
    let limits = Limits::default();
    let head_len = loop {
        match proto::parse_response(&buf, &mut head, &limits) {
            Ok(Status::Complete(n)) => break n,
            Ok(Status::Partial) if eof => return Err("closed before the response head".into()),
            Ok(Status::Partial) => {}
            Err(e) => return Err(format!("bad response: {e:?}")),
        }
        eof = fill(&mut stream, &mut buf).await?;
    };
    if head.status != 200 {
        return Err(format!("status {}", head.status));
    }
    let framing = proto::response_framing(Method::Get, &head);
    let mut body = Vec::new();
    let mut pos = head_len;
    let mut chunked = ChunkedDecoder::new();
    loop {
        let avail = buf.get(pos..).unwrap_or_default();
        match framing {
            Framing::Length(n) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if n > MAX_DOCUMENT {
                    return Err(format!("document larger than {MAX_DOCUMENT} bytes"));
                }
                if avail.len() >= n {
                    body.extend_from_slice(avail.get(..n).unwrap_or_default());
                    return Ok(body);
                }
            }
            Framing::Chunked => {
                let (consumed, done, _) = reencode(&mut chunked, avail, &mut body, false)
                    .map_err(|e| format!("bad chunked body: {e:?}"))?;
                if done {
                    return Ok(body);
                }
                pos += consumed;
            }
            Framing::UntilClose if eof => {
                body.extend_from_slice(avail);
                return Ok(body);
            }
            Framing::UntilClose => {}
        }
        if eof {
            return Err("closed before the body ended".into());
        }
        if buf.len() - head_len > MAX_DOCUMENT + 64 * 1024 {
            return Err(format!("document larger than {MAX_DOCUMENT} bytes"));
        }
        eof = fill(&mut stream, &mut buf).await?;
    }
}

/// Reads more into `buf` (growing it when full); true at end of stream.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<bool, String> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(16 * 1024);
    }
    match io::read_more(stream, buf, FETCH_TIMEOUT).await {
        Ok(_) => Ok(false),
        Err(IoFail::Eof) => Ok(true),
        Err(e) => Err(format!("read: {e:?}")),
    }
}
