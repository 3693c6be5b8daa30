//! HTTP/1.1 body bytes turned into HTTP/2 DATA and trailers, for both directions (a
//! response to an HTTP/2 client, a request to an HTTP/2 upstream): the body's framing is
//! undone (a length, chunks with their trailer section, or until the end) and the data sent
//! as the peer's window allows, a window shut past a deadline resetting the stream.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use h2::{Reason, SendStream};
use proto::{ChunkedDecoder, Emit, Framing};

/// Bytes waiting to be read by the exchange (a head, then a body's framing and data).
#[derive(Default)]
pub struct Queue {
    bytes: Vec<u8>,
    taken: usize,
}

impl Queue {
    /// Queues `bytes` after what waits.
    pub fn push(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// Queues a piece of body data, framed as a chunk when `chunked`.
    pub fn push_data(&mut self, data: &[u8], chunked: bool) {
        if data.is_empty() {
            return;
        }
        if chunked {
            proto::chunked::write_chunk_size(&mut self.bytes, data.len());
            self.bytes.extend_from_slice(data);
            self.bytes.extend_from_slice(b"\r\n");
        } else {
            self.bytes.extend_from_slice(data);
        }
    }

    /// The buffer to write into directly.
    pub fn raw(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.taken >= self.bytes.len()
    }

    /// Moves what fits of the waiting bytes into `buf`, as a read would; `None` when
    /// nothing waits.
    pub fn give<T: monoio::buf::IoBufMut>(&mut self, buf: &mut T) -> Option<usize> {
        let rest = self.bytes.get(self.taken..).filter(|r| !r.is_empty())?;
        let n = crate::sys::fill(buf, rest);
        self.taken += n;
        if self.taken >= self.bytes.len() {
            self.bytes.clear();
            self.taken = 0;
        }
        Some(n)
    }
}

/// What is left of a body.
pub enum Unframe {
    /// This many bytes.
    Length(u64),
    /// Chunks, their trailer section kept.
    Chunked(ChunkedDecoder),
    /// Everything until the writer ends.
    UntilClose,
}

/// One step of a body: its data, whether it ended, how many input bytes it used, and the
/// trailers it ended with.
pub struct Piece {
    /// Data bytes.
    pub data: Bytes,
    /// The body ended.
    pub end: bool,
    /// Input bytes used.
    pub used: usize,
    /// Trailers, when the body ended with some.
    pub trailers: Option<http::HeaderMap>,
}

/// The error of a stream that cannot go on.
pub fn broken(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, what)
}

impl Unframe {
    /// The body `framing` delimits; `None` when there is none.
    pub fn of(framing: Framing) -> Option<Unframe> {
        match framing {
            Framing::Length(0) => None,
            Framing::Length(n) => Some(Unframe::Length(n)),
            Framing::Chunked => Some(Unframe::Chunked(ChunkedDecoder::new().keeping_trailers())),
            Framing::UntilClose => Some(Unframe::UntilClose),
        }
    }

    /// Takes what `input` holds of the body.
    pub fn take(&mut self, input: &[u8]) -> io::Result<Piece> {
        let mut trailers = None;
        let (data, end, used) = match self {
            Unframe::Length(rem) => {
                let n = usize::try_from(*rem).unwrap_or(usize::MAX).min(input.len());
                *rem -= n as u64;
                let piece = input.get(..n).unwrap_or_default();
                (Bytes::copy_from_slice(piece), *rem == 0, n)
            }
            Unframe::Chunked(dec) => {
                let mut out = Vec::with_capacity(input.len());
                let d = dec
                    .decode(input, &mut out, Emit::Data)
                    .map_err(|_| broken("malformed chunked body"))?;
                if d.done {
                    trailers = fields(dec.trailers());
                }
                (Bytes::from(out), d.done, d.consumed)
            }
            Unframe::UntilClose => (Bytes::copy_from_slice(input), false, input.len()),
        };
        Ok(Piece {
            data,
            end,
            used,
            trailers,
        })
    }
}

/// Sends a piece on `send`: its data as the window opens, then its trailers, ending the
/// stream when the body ended.
pub async fn send_piece(
    send: &mut SendStream<Bytes>,
    piece: Piece,
    limit: Duration,
) -> io::Result<()> {
    let last = piece.end && piece.trailers.is_none();
    send_all(send, piece.data, last, limit).await?;
    match piece.trailers {
        Some(t) => send.send_trailers(t).map_err(|_| broken("stream closed")),
        None => Ok(()),
    }
}

/// Trailer field lines (`name: value` CRLF each) as HTTP/2 trailers; `None` when there are
/// none (hop-by-hop fields and fields HTTP/2 cannot carry are left out).
pub fn fields(lines: &[u8]) -> Option<http::HeaderMap> {
    let mut map = http::HeaderMap::new();
    for line in lines.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let value = value.get(1..).unwrap_or_default().trim_ascii();
        if proto::FieldKind::of(name).is_hop_by_hop() {
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
pub async fn send_all(
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
                    "the peer's window stayed shut",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_give_their_data_then_their_trailers() {
        let mut u = Unframe::of(Framing::Chunked).unwrap();
        let p = u
            .take(b"3\r\nabc\r\n0\r\ngrpc-status: 0\r\nTE: x\r\n\r\nextra")
            .unwrap();
        assert_eq!((&p.data[..], p.end, p.used), (&b"abc"[..], true, 36));
        let t = p.trailers.unwrap();
        assert_eq!(t.get("grpc-status").unwrap(), "0");
        assert!(t.get("te").is_none(), "hop-by-hop stays behind");
    }

    #[test]
    fn a_length_stops_at_its_end() {
        let mut u = Unframe::of(Framing::Length(4)).unwrap();
        let p = u.take(b"ab").unwrap();
        assert_eq!((&p.data[..], p.end), (&b"ab"[..], false));
        let p = u.take(b"cdef").unwrap();
        assert_eq!((&p.data[..], p.end, p.used), (&b"cd"[..], true, 2));
        assert!(Unframe::of(Framing::Length(0)).is_none());
    }
}
