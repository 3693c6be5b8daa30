//! The byte streams a shard reads and writes (`Stream`, named `ClientStream` and
//! `UpstreamStream` by side), plain TCP today, behind the small `Transport` trait.
//!
//! Nothing outside this file knows a stream is TCP: reads, writes, the read that does not
//! wait (stale pooled connections, early upstream answers) and the fd for drain all go
//! through `Transport`, so a TLS variant is one more arm per method here.

use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

pub use crate::sys::Ready;

/// A connection: plain TCP today; TLS adds a server-side variant (client connections) and a
/// client-side one (upstream connections). One type for both sides, so the read and write
/// paths are compiled once: with one type per side, `io::read_more` was instantiated twice
/// and LLVM stopped inlining the timeout around the read (callgrind: about 650 more
/// instructions per 16 KiB response).
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
}

/// A client connection (the name says which side; the type is shared).
pub type ClientStream = Stream;

/// A connection to an upstream target.
pub type UpstreamStream = Stream;

/// What the data path needs of a stream.
pub trait Transport {
    /// Reads into `buf`'s uninitialised part (monoio owns the buffer meanwhile).
    fn read<T: IoBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>>;
    /// Writes all of `buf`.
    fn write_all<T: IoBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>>;
    /// Ends the sending side.
    fn shutdown(&mut self) -> impl Future<Output = ()>;
    /// The socket's fd (drain shuts its read side down).
    fn fd(&self) -> RawFd;
    /// Appends what has already arrived to `buf` without waiting (through TLS: what it
    /// decrypts to, so a session ticket is not taken for data).
    fn read_ready(&mut self, buf: &mut Vec<u8>) -> Ready;
}

/// Implements `Transport` for a stream enum by passing each call to its variant. The futures
/// are the variant's own, returned as they are: `async fn` wrappers in between made a
/// proxied 100-byte request cost 11,800 instructions instead of 10,600 (callgrind, epoll,
/// 20,000 requests). A second variant (TLS) will return an either-future of the two.
macro_rules! transport {
    ($t:ident) => {
        impl Transport for $t {
            #[inline]
            fn read<T: IoBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
                match self {
                    $t::Plain(s) => s.read(buf),
                }
            }

            #[inline]
            fn write_all<T: IoBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
                match self {
                    $t::Plain(s) => AsyncWriteRentExt::write_all(s, buf),
                }
            }

            async fn shutdown(&mut self) {
                match self {
                    $t::Plain(s) => {
                        let _ = AsyncWriteRent::shutdown(s).await;
                    }
                }
            }

            #[inline]
            fn fd(&self) -> RawFd {
                match self {
                    $t::Plain(s) => s.as_raw_fd(),
                }
            }

            fn read_ready(&mut self, buf: &mut Vec<u8>) -> Ready {
                match self {
                    $t::Plain(s) => crate::sys::recv_ready(s.as_raw_fd(), buf),
                }
            }
        }
    };
}

transport!(Stream);

impl Stream {
    /// True when an idle pooled connection can no longer carry a request: the peer closed or
    /// reset it, or sent bytes nobody asked for (a stray `408`, say). Such bytes are read
    /// into `scratch` and dropped with the connection.
    pub fn is_unusable(&mut self, scratch: &mut Vec<u8>) -> bool {
        scratch.clear();
        if scratch.capacity() == 0 {
            scratch.reserve(64);
        }
        !matches!(self.read_ready(scratch), Ready::Nothing)
    }
}
