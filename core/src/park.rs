//! Idle keep-alive connections park: a connection that received no request for `IDLE_HOLD`
//! keeps only what identifies it (`Parked`: its stream, peer, listener, count) and waits for
//! the socket in a small future; its buffers, heads and per-request state are dropped, and
//! made again when the client sends more. nginx does the same with its header buffers, and
//! thousands of idle clients then cost little more than their sockets. A parked connection
//! holds no timer of its own (a monoio timer is 640 bytes): the shard's sweep ends those
//! whose keep-alive ran out (`Phase`).

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use policy::TlsInfo;

use crate::listener::ListenerId;
use crate::stream::{ClientStream, Transport};

/// How long a kept-alive connection holds its buffers waiting for the next request: a busy
/// client's next request comes sooner (no allocation between its requests), an idle one then
/// waits parked.
pub const IDLE_HOLD: Duration = Duration::from_millis(100);

/// Where a client connection stands, shared with the shard's registry (drain closes the
/// waiting ones, the sweep the parked ones whose keep-alive ran out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A request is being read or served.
    Busy,
    /// Between requests, buffers in hand.
    Waiting,
    /// Parked until this deadline.
    Parked(Instant),
    /// The sweep found its deadline passed and woke it: it closes.
    Expired,
}

impl Phase {
    /// Between requests (drain may close it).
    pub fn idle(self) -> bool {
        self != Phase::Busy
    }
}

/// How often a shard looks for parked connections whose keep-alive ran out (they close up to
/// this much late).
pub const SWEEP_EVERY: Duration = IDLE_HOLD;

/// What a parked connection keeps.
pub struct Parked {
    /// The stream (TLS: its ciphertext buffers given back).
    pub stream: ClientStream,
    /// The client's address.
    pub peer: SocketAddr,
    /// The listener it came in on.
    pub listener: ListenerId,
    /// Its TLS session, when it has one.
    pub tls: Option<Rc<TlsInfo>>,
    /// Where it stands (shared with the shard's registry).
    pub phase: Rc<Cell<Phase>>,
    /// Requests received so far.
    pub served: u64,
}

impl Parked {
    /// A connection just accepted (nothing served yet).
    pub fn new(
        stream: ClientStream,
        peer: SocketAddr,
        listener: ListenerId,
        tls: Option<Rc<TlsInfo>>,
    ) -> Parked {
        Parked {
            stream,
            peer,
            listener,
            tls,
            phase: Rc::new(Cell::new(Phase::Waiting)),
            served: 0,
        }
    }

    /// Waits for the client to send something (or close) for up to `limit`, with its stream's
    /// own buffers given back; false when it idled out (the sweep ended the wait).
    pub async fn wait(&mut self, limit: Duration) -> bool {
        self.stream.release_buffers();
        self.phase.set(Phase::Parked(crate::clock::now() + limit));
        self.stream.readable().await;
        match self.phase.get() {
            Phase::Expired => false,
            _ => {
                self.phase.set(Phase::Waiting);
                true
            }
        }
    }
}
