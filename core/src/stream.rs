//! The byte streams a shard reads and writes: `ClientStream` (client connections) and
//! `UpstreamStream` (upstream ones), plain TCP today, both behind the small `Transport` trait.
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

/// A client connection.
pub enum ClientStream {
    /// Plain TCP.
    Plain(TcpStream),
}

/// A connection to an upstream target.
pub enum UpstreamStream {
    /// Plain TCP.
    Plain(TcpStream),
}

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

/// Implements `Transport` for a stream enum by passing each call to its variant.
macro_rules! transport {
    ($t:ident) => {
        impl Transport for $t {
            #[inline]
            async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
                match self {
                    $t::Plain(s) => s.read(buf).await,
                }
            }

            #[inline]
            async fn write_all<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
                match self {
                    $t::Plain(s) => AsyncWriteRentExt::write_all(s, buf).await,
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

transport!(ClientStream);
transport!(UpstreamStream);

impl UpstreamStream {
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
