//! A client connection's state while it serves a burst of requests: its stream, reusable
//! buffers and heads (made from and given back to `park::Parked`), and what it does after an
//! exchange (`Next`) and says about it (`Persist`).

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;

use monoio::io::Canceller;
use policy::TlsInfo;
use proto::{Framing, RequestHead, ResponseHead, Version};

use crate::park::{Parked, Phase};
use crate::stream::ClientStream;

/// A client connection and its reusable buffers (allocated once per burst of requests).
pub struct Conn {
    /// The stream.
    pub stream: ClientStream,
    /// The client's address.
    pub peer: SocketAddr,
    /// Unconsumed bytes from the client; a head is parsed from its start.
    pub buf: Vec<u8>,
    /// Bytes being assembled for the next write (heads, re-encoded chunks).
    pub out: Vec<u8>,
    /// Read buffer for the current upstream response (borrowed from the shard per exchange).
    pub up_buf: Vec<u8>,
    /// Second and third buffers for response bodies that stages rewrite (allocated on first
    /// use).
    pub tap_out: Vec<u8>,
    /// See `tap_out`.
    pub tap_scratch: Vec<u8>,
    /// The current request head (spans into `buf`).
    pub head: RequestHead,
    /// The current response head (spans into `up_buf`).
    pub resp: ResponseHead,
    /// Where it stands (drain may close it between requests).
    pub phase: Rc<Cell<Phase>>,
    /// Requests received on this connection.
    pub served: u64,
    /// The listener it came in on (`Gateway::listener`).
    pub listener: crate::listener::ListenerId,
    /// Its TLS session, when it has one.
    pub tls: Option<Rc<TlsInfo>>,
    /// Cancels the read that waits for the next request without losing what it read.
    pub cancel: Canceller,
    /// Whether the current request is a gRPC call (the gateway's refusals are then gRPC
    /// statuses, not problem+json).
    pub grpc: crate::grpc::Flavor,
    /// Whether the current request takes trailers (`TE: trailers`; read while its head is
    /// in `buf`).
    pub takes_trailers: bool,
}

/// Initial read buffer of a client connection.
pub const INITIAL_BUFFER: usize = 4096;
/// Room for this many request fields at first.
const INITIAL_FIELDS: usize = 32;
/// The write buffer's first size.
const OUT_BUFFER: usize = 4096;

impl Conn {
    /// The connection `p` with buffers sized for a head of up to `max_fields` fields.
    pub fn resume(p: Parked, client_buffer: usize, max_fields: usize) -> Conn {
        Conn {
            stream: p.stream,
            peer: p.peer,
            // Small at first: most heads fit in 4 KiB; it grows up to `client_buffer` on demand.
            buf: Vec::with_capacity(INITIAL_BUFFER.min(client_buffer)),
            // allocated once a head is in (`ready_out`): a slow client does not hold it
            out: Vec::new(),
            up_buf: Vec::new(),
            tap_out: Vec::new(),
            tap_scratch: Vec::new(),
            // most heads have a few fields; a longer one grows it (up to `max_fields`)
            head: RequestHead::with_capacity(max_fields.min(INITIAL_FIELDS)),
            resp: ResponseHead::with_capacity(16),
            phase: p.phase,
            served: p.served,
            listener: p.listener,
            tls: p.tls,
            cancel: Canceller::new(),
            grpc: crate::grpc::Flavor::None,
            takes_trailers: false,
        }
    }

    /// Gives the write buffer its first allocation, once a burst has a head to answer.
    pub fn ready_out(&mut self) {
        if self.out.capacity() == 0 {
            self.out = Vec::with_capacity(OUT_BUFFER);
        }
    }

    /// What the connection keeps while it idles; the rest is dropped. Only between requests:
    /// nothing unread may be in `buf`.
    pub fn park(self) -> Parked {
        Parked {
            stream: self.stream,
            peer: self.peer,
            listener: self.listener,
            tls: self.tls,
            phase: self.phase,
            served: self.served,
        }
    }

    /// Consumes the current request (head of `head_len` bytes and its body) if the body is
    /// already fully buffered; the bytes consumed, or `None` when it is not (the connection
    /// must then close after a local answer, since the body was never read).
    pub fn skip_request(&mut self, head_len: usize) -> Option<u64> {
        let total = match self.head.framing {
            Framing::Length(n) => (head_len as u64).checked_add(n)?,
            Framing::Chunked | Framing::UntilClose => return None,
        };
        if (self.buf.len() as u64) < total {
            return None;
        }
        self.buf.drain(..total as usize);
        Some(total)
    }
}

/// What the connection does after an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Read the next request.
    KeepAlive,
    /// Close after the answer, lingering so unread client bytes do not reset it.
    Close,
    /// The client left or the stream broke: close at once.
    Abort,
}

/// Whether an answer keeps the connection, and the Connection field that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// `Connection: close`.
    Close,
    /// Kept alive; HTTP/1.0 clients are told so with `Connection: keep-alive`.
    Keep(Version),
}

impl Persist {
    /// The Connection field value to send (empty: none).
    pub fn header(self) -> &'static [u8] {
        match self {
            Persist::Close => b"close",
            Persist::Keep(Version::Http10) => b"keep-alive",
            Persist::Keep(Version::Http11) => b"",
        }
    }

    /// `Close` when `close`, else kept for a client speaking `version`.
    pub fn of(close: bool, version: Version) -> Persist {
        if close {
            Persist::Close
        } else {
            Persist::Keep(version)
        }
    }

    /// What the connection does once the answer went out.
    pub fn next(self) -> Next {
        match self {
            Persist::Close => Next::Close,
            Persist::Keep(_) => Next::KeepAlive,
        }
    }
}
