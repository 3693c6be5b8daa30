//! Reading a whole request body for stages that must see it (JSON Schema validation), bounded
//! by the limit they ask: the raw bytes stay in the connection buffer after the head (so a
//! refusal can still keep the connection), the de-chunked body is returned.

use proto::{ChunkedDecoder, Emit, Framing};

use crate::answer::send_continue;
use crate::conn::Conn;
use crate::error::ProxyError;
use crate::gateway::Settings;
use crate::io::{self, IoFail};

/// A body read whole.
pub struct Buffered {
    /// The body's data (de-chunked).
    pub body: Vec<u8>,
    /// How many bytes after the head it took on the wire.
    pub raw_len: usize,
}

/// Chunk framing allowed on top of the data before the body counts as too large.
const FRAMING_ALLOWANCE: usize = 64 * 1024;

/// Reads the body of the request whose head is `conn.buf[..head_len]`, refusing it past
/// `limit` data bytes (413) or when the client pauses longer than `client_body_timeout`.
pub async fn read_whole(
    conn: &mut Conn,
    head_len: usize,
    limit: u64,
    s: &Settings,
) -> Result<Buffered, ProxyError> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if conn.head.expect_continue && conn.buf.len() <= head_len {
        send_continue(conn, s.client_body_timeout).await?;
    }
    match conn.head.framing {
        Framing::Length(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if n > limit {
                return Err(ProxyError::ClientBodyTooLarge);
            }
            let total = head_len.saturating_add(n);
            while conn.buf.len() < total {
                conn.buf.reserve(total - conn.buf.len());
                read(conn, s).await?;
            }
            Ok(Buffered {
                body: conn.buf.get(head_len..total).unwrap_or_default().to_vec(),
                raw_len: n,
            })
        }
        Framing::Chunked => {
            // a chunk size past the limit is refused on its size line, before its data
            let mut dec = ChunkedDecoder::with_limit(limit as u64);
            let mut body = Vec::new();
            let mut pos = head_len;
            loop {
                let d = dec
                    .decode(
                        conn.buf.get(pos..).unwrap_or_default(),
                        &mut body,
                        Emit::Data,
                    )
                    .map_err(ProxyError::ClientMalformed)?;
                pos += d.consumed;
                if body.len() > limit || pos - head_len > limit.saturating_add(FRAMING_ALLOWANCE) {
                    return Err(ProxyError::ClientBodyTooLarge);
                }
                if d.done {
                    return Ok(Buffered {
                        body,
                        raw_len: pos - head_len,
                    });
                }
                if conn.buf.len() == conn.buf.capacity() {
                    conn.buf.reserve(16 * 1024);
                }
                read(conn, s).await?;
            }
        }
        Framing::UntilClose => Ok(Buffered {
            body: Vec::new(),
            raw_len: 0,
        }),
    }
}

async fn read(conn: &mut Conn, s: &Settings) -> Result<(), ProxyError> {
    io::read_more(&mut conn.stream, &mut conn.buf, s.client_body_timeout)
        .await
        .map(|_| ())
        .map_err(|e| match e {
            IoFail::Timeout => ProxyError::ClientBodyTimeout,
            _ => ProxyError::ClientGone,
        })
}
