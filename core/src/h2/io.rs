//! The byte stream under an HTTP/2 connection: the client stream (plain or TLS) with the
//! bytes read before HTTP/2 was recognised given first, and a meter on what the client sends
//! (control frames against a token bucket: PING and SETTINGS floods, empty-frame floods).
//! It implements monoio's owned-buffer IO traits; `monoio_compat` turns it into the tokio
//! traits the `h2` crate drives.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use policy::task::Wake;
use proto::h2frame::FrameScan;

use crate::stream::{ClientStream, Close, Transport};

/// Raised when the client's control frames ran past their budget; the connection task then
/// ends the connection with ENHANCE_YOUR_CALM. From then on nothing more is read.
#[derive(Debug, Default)]
pub struct Flood {
    /// Whether it happened.
    pub tripped: Cell<bool>,
    /// Wakes the connection task.
    pub wake: Wake,
}

/// A token bucket over control frames.
#[derive(Debug)]
struct Budget {
    tokens: f64,
    per_s: f64,
    burst: f64,
    at: Instant,
}

impl Budget {
    /// Takes one token at `now`; false when none is left.
    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.per_s).min(self.burst);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// What a client sends, metered.
struct Meter {
    scan: FrameScan,
    budget: Budget,
    flood: Rc<Flood>,
}

/// A stream as an HTTP/2 connection reads and writes it.
pub struct H2Io {
    stream: ClientStream,
    /// Bytes read before the hand-over (h2c: the preface the HTTP/1.1 reader saw), given first.
    early: Vec<u8>,
    /// The client's control frames against their budget (none on upstream connections).
    meter: Option<Meter>,
}

impl H2Io {
    /// `stream` after `early` was read from it; control frames limited to `per_s` a second
    /// with bursts of `burst`, `flood` raised past them.
    pub fn new(
        stream: ClientStream,
        early: Vec<u8>,
        per_s: u32,
        burst: u32,
        flood: Rc<Flood>,
    ) -> H2Io {
        let meter = Meter {
            scan: FrameScan::new(),
            budget: Budget {
                tokens: f64::from(burst),
                per_s: f64::from(per_s),
                burst: f64::from(burst),
                at: crate::clock::now(),
            },
            flood,
        };
        H2Io {
            stream,
            early,
            meter: Some(meter),
        }
    }

    /// An upstream connection's stream: nothing metered.
    pub fn upstream(stream: crate::stream::UpstreamStream) -> H2Io {
        H2Io {
            stream,
            early: Vec::new(),
            meter: None,
        }
    }

    /// Whether the client flooded.
    fn flooded(&self) -> bool {
        self.meter.as_ref().is_some_and(|m| m.flood.tripped.get())
    }

    /// Meters `bytes` the client sent.
    fn meter(&mut self, bytes: &[u8]) {
        let Some(m) = &mut self.meter else { return };
        let now = crate::clock::now();
        let (budget, flood) = (&mut m.budget, &m.flood);
        m.scan.feed(bytes, |h| {
            if h.is_control() && !budget.take(now) && !flood.tripped.replace(true) {
                flood.wake.raise();
            }
        });
    }
}

impl AsyncReadRent for H2Io {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        if self.flooded() {
            // the connection task ends the connection; nothing more is read meanwhile
            std::future::pending::<()>().await;
        }
        if !self.early.is_empty() {
            let mut early = std::mem::take(&mut self.early);
            let n = crate::sys::fill(&mut buf, &early);
            self.meter(early.get(..n).unwrap_or_default());
            early.drain(..n);
            self.early = early;
            return (Ok(n), buf);
        }
        let (res, mut buf) = self.stream.read(buf).await;
        if let Ok(n) = res {
            self.meter(crate::sys::filled(&mut buf, n));
        }
        (res, buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        // monoio_compat reads with `read` alone
        (Err(std::io::ErrorKind::Unsupported.into()), buf)
    }
}

impl AsyncWriteRent for H2Io {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        self.stream.write_all(buf).await
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // monoio_compat writes with `write` alone
        (Err(std::io::ErrorKind::Unsupported.into()), buf)
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        self.stream.shutdown(Close::Clean).await;
        Ok(())
    }
}
