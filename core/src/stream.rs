//! The byte streams a shard reads and writes (`Stream`, named `ClientStream` and
//! `UpstreamStream` by side), plain TCP or TLS, behind the small `Transport` trait.
//!
//! Nothing outside this file knows whether a stream is TLS: reads, writes, the read that does
//! not wait (stale pooled connections, early upstream answers) and the fd for drain all go
//! through `Transport`.

use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelHandle, CancelableAsyncReadRent,
};
use monoio::net::TcpStream;

pub use crate::sys::Ready;
pub use crate::tls::stream::Close;
use crate::tls::stream::TlsStream;

/// A connection, plain or TLS (server side for clients, client side for upstreams). One type
/// for both sides, so the read and write paths are compiled once: with one type per side,
/// `io::read_more` was instantiated twice and LLVM stopped inlining the timeout around the
/// read (callgrind: about 650 more instructions per 16 KiB response).
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (boxed: a rustls connection is large, a plain stream small).
    Tls(Box<TlsStream>),
    /// One stream of an HTTP/2 connection, read and written as HTTP/1.1 (`h2::pipe`).
    H2(Box<crate::h2::pipe::Pipe>),
    /// A request to an HTTP/2 upstream, written and read as HTTP/1.1 (`h2::outbound`).
    H2Up(Box<crate::h2::outbound::Outbound>),
}

/// A client connection (the name says which side; the type is shared).
pub type ClientStream = Stream;

/// A connection to an upstream target.
pub type UpstreamStream = Stream;

/// What the data path needs of a stream.
pub trait Transport {
    /// Reads into `buf`'s uninitialised part (monoio owns the buffer meanwhile).
    fn read<T: IoBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>>;
    /// `read` that `cancel` can cancel without losing data: a cancelled read still ends with
    /// what it read, or with `ECANCELED` when it read nothing.
    fn read_cancelable<T: IoBufMut>(
        &mut self,
        buf: T,
        cancel: CancelHandle,
    ) -> impl Future<Output = BufResult<usize, T>>;
    /// Writes all of `buf`.
    fn write_all<T: IoBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>>;
    /// Gives back buffers the stream holds for itself while the connection idles (TLS: its
    /// ciphertext buffers).
    fn release_buffers(&mut self);
    /// Ends the sending side (TLS: close_notify first when `Clean`).
    fn shutdown(&mut self, how: Close) -> impl Future<Output = ()>;
    /// The socket's fd (drain shuts its read side down).
    fn fd(&self) -> RawFd;
    /// Appends what has already arrived to `buf` without waiting (through TLS: what it
    /// decrypts to, so a session ticket is not taken for data).
    fn read_ready(&mut self, buf: &mut Vec<u8>) -> Ready;
    /// Waits until the socket has something to read (or an error); cancel-safe.
    fn readable(&self) -> impl Future<Output = ()>;
    /// Sends what of `data` goes now without waiting (through TLS: what rustls takes, its
    /// ciphertext sent as far as the socket takes it, the rest kept for the next call).
    fn write_ready(&mut self, data: &[u8]) -> crate::sys::Sent;
    /// Bytes from an earlier `write_ready` still wait for the socket.
    fn write_pending(&self) -> bool;
    /// Waits until the socket takes more (or an error); cancel-safe.
    fn writable(&self) -> impl Future<Output = ()>;
}

pin_project_lite::pin_project! {
    /// The future of a plain or a TLS operation. The plain variant's future is monoio's own,
    /// not wrapped in an `async fn`: wrappers made a proxied 100-byte request cost 11,800
    /// instructions instead of 10,600 (callgrind, epoll, 20,000 requests). The TLS one is
    /// boxed: unboxed, every IO future grew to its size and moving them cost ~600
    /// instructions per plain 16 KiB response.
    #[project = EitherProj]
    #[expect(missing_docs, reason = "pin-project-lite takes no docs on variant fields: `f` is the operation")]
    pub enum Either<P, T, H, U> {
        /// A plain stream's operation.
        Plain { #[pin] f: P },
        /// A TLS stream's operation.
        Tls { #[pin] f: T },
        /// An HTTP/2 client stream's operation (boxed too).
        H2 { #[pin] f: H },
        /// An HTTP/2 upstream stream's operation (boxed too).
        H2Up { #[pin] f: U },
    }
}

impl<O, P, T, H, U> Future for Either<P, T, H, U>
where
    P: Future<Output = O>,
    T: Future<Output = O>,
    H: Future<Output = O>,
    U: Future<Output = O>,
{
    type Output = O;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<O> {
        match self.project() {
            EitherProj::Plain { f } => f.poll(cx),
            EitherProj::Tls { f } => f.poll(cx),
            EitherProj::H2 { f } => f.poll(cx),
            EitherProj::H2Up { f } => f.poll(cx),
        }
    }
}

impl Transport for Stream {
    #[inline]
    fn read<T: IoBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        match self {
            Stream::Plain(s) => Either::Plain { f: s.read(buf) },
            // boxed, so the plain future (and everything that holds one) stays small
            Stream::Tls(s) => Either::Tls {
                f: Box::pin(s.read(buf)),
            },
            Stream::H2(s) => Either::H2 {
                f: Box::pin(s.read(buf)),
            },
            Stream::H2Up(s) => Either::H2Up {
                f: Box::pin(s.read(buf)),
            },
        }
    }

    #[inline]
    fn read_cancelable<T: IoBufMut>(
        &mut self,
        buf: T,
        cancel: CancelHandle,
    ) -> impl Future<Output = BufResult<usize, T>> {
        match self {
            Stream::Plain(s) => Either::Plain {
                f: s.cancelable_read(buf, cancel),
            },
            Stream::Tls(s) => Either::Tls {
                f: Box::pin(s.read_cancelable(buf, cancel)),
            },
            // an HTTP/2 stream is read this way only between exchanges, when its read ends
            // at once (the request is over)
            Stream::H2(s) => Either::H2 {
                f: Box::pin(s.read(buf)),
            },
            // read only while its answer comes, never to wait between requests
            Stream::H2Up(s) => Either::H2Up {
                f: Box::pin(s.read(buf)),
            },
        }
    }

    fn release_buffers(&mut self) {
        if let Stream::Tls(s) = self {
            s.release_buffers();
        }
    }

    #[inline]
    fn write_all<T: IoBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        match self {
            Stream::Plain(s) => Either::Plain {
                f: AsyncWriteRentExt::write_all(s, buf),
            },
            Stream::Tls(s) => Either::Tls {
                f: Box::pin(s.write_all(buf)),
            },
            Stream::H2(s) => Either::H2 {
                f: Box::pin(s.write_all(buf)),
            },
            Stream::H2Up(s) => Either::H2Up {
                f: Box::pin(s.write_all(buf)),
            },
        }
    }

    async fn shutdown(&mut self, how: Close) {
        match self {
            Stream::Plain(s) => {
                let _ = AsyncWriteRent::shutdown(s).await;
            }
            Stream::Tls(s) => s.shutdown(how).await,
            Stream::H2(s) => s.shutdown(how).await,
            Stream::H2Up(s) => s.shutdown(how),
        }
    }

    #[inline]
    fn fd(&self) -> RawFd {
        match self {
            Stream::Plain(s) => s.as_raw_fd(),
            Stream::Tls(s) => s.tcp().as_raw_fd(),
            // no socket of its own: its connection is registered and drained as a whole
            Stream::H2(_) | Stream::H2Up(_) => -1,
        }
    }

    fn read_ready(&mut self, buf: &mut Vec<u8>) -> Ready {
        match self {
            Stream::Plain(s) => crate::sys::recv_ready(s.as_raw_fd(), buf),
            Stream::Tls(s) => s.read_ready(buf),
            // never tunnelled (no upgrade over HTTP/2)
            Stream::H2(_) => Ready::Eof,
            // an upstream stream answers through `read` only (no early answer is seen)
            Stream::H2Up(_) => Ready::Nothing,
        }
    }

    async fn readable(&self) {
        if let Some(tcp) = self.tcp() {
            let _ = tcp.readable(false).await;
        }
    }

    fn write_ready(&mut self, data: &[u8]) -> crate::sys::Sent {
        match self {
            Stream::Plain(s) => crate::sys::send_ready(s.as_raw_fd(), data),
            Stream::Tls(s) => s.write_ready(data),
            Stream::H2(_) | Stream::H2Up(_) => crate::sys::Sent::Error,
        }
    }

    fn write_pending(&self) -> bool {
        match self {
            Stream::Plain(_) | Stream::H2(_) | Stream::H2Up(_) => false,
            Stream::Tls(s) => s.write_pending(),
        }
    }

    async fn writable(&self) {
        if let Some(tcp) = self.tcp() {
            let _ = tcp.writable(false).await;
        }
    }
}

impl Stream {
    /// The socket under it (none under an HTTP/2 stream).
    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Plain(s) => Some(s),
            Stream::Tls(s) => Some(s.tcp()),
            Stream::H2(_) | Stream::H2Up(_) => None,
        }
    }

    /// A stream of a shared HTTP/2 upstream connection: one request only, never pooled (its
    /// connection is the mux's).
    pub fn is_multiplexed(&self) -> bool {
        matches!(self, Stream::H2Up(_))
    }

    /// True when an idle pooled connection can no longer carry a request: the peer closed or
    /// reset it, or sent bytes nobody asked for (a stray `408`, say). Such bytes are read
    /// into `scratch` and dropped with the connection.
    pub fn is_unusable(&mut self, scratch: &mut Vec<u8>) -> bool {
        if self.is_multiplexed() {
            return true;
        }
        scratch.clear();
        if scratch.capacity() == 0 {
            scratch.reserve(64);
        }
        !matches!(self.read_ready(scratch), Ready::Nothing)
    }
}
