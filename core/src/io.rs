//! Reads and writes with deadlines on any `Transport`; the buffer moves into each operation
//! and comes back, or is left empty when a deadline dropped it (the connection then closes).

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
    let owned = std::mem::take(buf);
    let (len, cap) = (owned.len(), owned.capacity());
    if len >= cap {
        *buf = owned;
        return Err(IoFail::Full);
    }
    match crate::clock::timeout(limit, s.read(owned.slice_mut(len..cap))).await {
        Ok((res, slice)) => {
            *buf = slice.into_inner();
            match res {
                Ok(0) => Err(IoFail::Eof),
                Ok(n) => Ok(n),
                Err(_) => Err(IoFail::Error),
            }
        }
        Err(_) => Err(IoFail::Timeout),
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
