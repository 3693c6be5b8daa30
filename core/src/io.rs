//! Reads and writes with deadlines on any `Transport`; the buffer moves into each operation
//! and comes back, or is left empty when a deadline dropped it (the connection then closes),
//! except after `read_more_or_cancel`, which keeps the buffer and what raced in.

use std::ops::Range;
use std::time::Duration;

use monoio::buf::{IoBuf, IoBufMut};

use crate::stream::Transport;

/// Why a read or write did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoFail {
    /// The peer closed its side (read returned 0).
    Eof,
    /// The deadline passed.
    Timeout,
    /// The buffer has no spare capacity.
    Full,
    /// Reset, broken pipe or another socket error.
    Error,
}

/// Reads into the spare capacity of `buf`, appending. Returns the number of bytes read.
pub async fn read_more<S: Transport>(
    s: &mut S,
    buf: &mut Vec<u8>,
    limit: Duration,
) -> Result<usize, IoFail> {
    let (owned, spare) = take_spare(buf)?;
    match crate::clock::timeout(limit, s.read(owned.slice_mut(spare))).await {
        Ok((res, slice)) => {
            *buf = slice.into_inner();
            outcome(res)
        }
        Err(_) => Err(IoFail::Timeout),
    }
}

/// `read_more` whose deadline cancels the read and waits for its end, so nothing is lost: a
/// read that raced the deadline keeps its bytes (`Ok`), one that read nothing gives
/// `Timeout` with `buf` back. `cancel` is replaced after a cancellation.
pub async fn read_more_or_cancel<S: Transport>(
    s: &mut S,
    buf: &mut Vec<u8>,
    limit: Duration,
    cancel: &mut monoio::io::Canceller,
) -> Result<usize, IoFail> {
    let (owned, spare) = take_spare(buf)?;
    let mut read = std::pin::pin!(s.read_cancelable(owned.slice_mut(spare), cancel.handle()));
    let (res, slice) = match crate::clock::timeout(limit, &mut read).await {
        Ok(done) => done,
        Err(_) => {
            *cancel = std::mem::take(cancel).cancel();
            read.await
        }
    };
    *buf = slice.into_inner();
    outcome(res)
}

/// Takes `buf` out for a read into its spare capacity (the range returned); `Full`, with
/// `buf` left in place, when it has none.
#[inline]
fn take_spare(buf: &mut Vec<u8>) -> Result<(Vec<u8>, Range<usize>), IoFail> {
    let (len, cap) = (buf.len(), buf.capacity());
    if len >= cap {
        return Err(IoFail::Full);
    }
    Ok((std::mem::take(buf), len..cap))
}

/// What a finished read means.
#[inline]
fn outcome(res: std::io::Result<usize>) -> Result<usize, IoFail> {
    match res {
        Ok(0) => Err(IoFail::Eof),
        Ok(n) => Ok(n),
        // only a cancelled read ends so: nothing arrived in time
        Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => Err(IoFail::Timeout),
        Err(_) => Err(IoFail::Error),
    }
}

/// Writes all of `buf`.
pub async fn write_all<S: Transport>(
    s: &mut S,
    buf: &mut Vec<u8>,
    limit: Duration,
) -> Result<(), IoFail> {
    if buf.is_empty() {
        return Ok(());
    }
    let owned = std::mem::take(buf);
    match crate::clock::timeout(limit, s.write_all(owned)).await {
        Ok((res, owned)) => {
            *buf = owned;
            res.map(|_| ()).map_err(|_| IoFail::Error)
        }
        Err(_) => Err(IoFail::Timeout),
    }
}

/// Writes `buf[range]` (zero-copy forwarding of a read buffer).
pub async fn write_range<S: Transport>(
    s: &mut S,
    buf: &mut Vec<u8>,
    range: Range<usize>,
    limit: Duration,
) -> Result<(), IoFail> {
    if range.is_empty() {
        return Ok(());
    }
    let owned = std::mem::take(buf);
    if range.end > owned.len() {
        *buf = owned;
        return Err(IoFail::Error);
    }
    match crate::clock::timeout(limit, s.write_all(owned.slice(range))).await {
        Ok((res, slice)) => {
            *buf = slice.into_inner();
            res.map(|_| ()).map_err(|_| IoFail::Error)
        }
        Err(_) => Err(IoFail::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::io::Write;
    use std::pin::pin;
    use std::task::Poll;

    use monoio::buf::IoBufMut;

    use super::*;
    use crate::stream::Stream;

    fn pair() -> (std::net::TcpStream, Stream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let server = Stream::Plain(monoio::net::TcpStream::from_std(server).unwrap());
        (client, server)
    }

    /// The mechanism `read_more_or_cancel` rests on: a read whose bytes arrived but were not
    /// yet seen, cancelled, ends with them, or leaves them in the socket (epoll reads only when
    /// polled; io_uring may have taken them already): never drops them.
    async fn a_cancelled_read_keeps_what_it_read() {
        let (mut client, mut server) = pair();
        let cancel = monoio::io::Canceller::new();
        let (res, slice) = {
            let buf = Vec::with_capacity(64);
            let mut read = pin!(server.read_cancelable(buf.slice_mut(0..64), cancel.handle()));
            // submitted, nothing there yet
            let first = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx).is_pending()));
            assert!(first.await);
            client.write_all(b"hello").unwrap();
            // the runtime runs meanwhile: the read completes unseen
            monoio::time::sleep(Duration::from_millis(50)).await;
            let _fresh = cancel.cancel();
            read.await
        };
        let mut buf = slice.into_inner();
        match res {
            Ok(n) => assert_eq!(n, 5),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ECANCELED));
                assert!(buf.is_empty());
                let got = read_more(&mut server, &mut buf, Duration::from_secs(5)).await;
                assert_eq!(got, Ok(5), "the bytes stayed in the socket");
            }
        }
        assert_eq!(buf, b"hello");
    }

    /// Nothing arrives: a timeout, with the buffer back; then the next read gets the bytes.
    async fn an_empty_wait_times_out_with_its_buffer() {
        let (mut client, mut server) = pair();
        let mut cancel = monoio::io::Canceller::new();
        let mut buf = Vec::with_capacity(64);
        let got = read_more_or_cancel(
            &mut server,
            &mut buf,
            Duration::from_millis(10),
            &mut cancel,
        );
        assert_eq!(got.await, Err(IoFail::Timeout));
        assert_eq!(buf.capacity(), 64);
        client.write_all(b"next").unwrap();
        let got = read_more_or_cancel(&mut server, &mut buf, Duration::from_secs(5), &mut cancel);
        assert_eq!(got.await, Ok(4));
        assert_eq!(buf, b"next");
    }

    async fn both() {
        a_cancelled_read_keeps_what_it_read().await;
        an_empty_wait_times_out_with_its_buffer().await;
    }

    #[test]
    fn a_cancelled_read_loses_nothing_on_either_driver() {
        match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .enable_timer()
            .build()
        {
            Ok(mut rt) => rt.block_on(both()),
            Err(e) => println!("io_uring unavailable ({e}): only the epoll run"),
        }
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
            .block_on(both());
    }
}
