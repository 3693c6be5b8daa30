//! HTTP/2 connections to an upstream's targets, per shard (`protocol = "h2c"` or `"h2"`): up
//! to `h2_connections` per target, each carrying up to `h2_streams` streams at once. A
//! request takes the least busy live connection, or opens another while there is room; past
//! that, it waits on the least busy one for a stream (the target's own limit holds too). Each
//! connection's frames are driven by a task of the shard; one that ends (GOAWAY, error) is
//! forgotten, and the next request opens a new one.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use rustls::pki_types::ServerName;

use crate::error::ProxyError;
use crate::h2::outbound::Outbound;
use crate::stream::UpstreamStream;
use crate::tls::UpstreamTls;

/// Read and write buffers of an upstream HTTP/2 connection's byte stream.
const IO_BUFFER: usize = 16 * 1024;

/// One connection.
struct Link {
    send: SendRequest<Bytes>,
    /// False once its task ended.
    alive: Rc<Cell<bool>>,
    /// Streams open on it.
    in_flight: Rc<Cell<usize>>,
}

/// A stream counted on its connection while it lives.
pub struct InFlight(Rc<Cell<usize>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// What opening a stream needs to know of the exchange.
pub struct Open<'a> {
    /// The target's address.
    pub addr: SocketAddr,
    /// TLS config and name, for `h2`.
    pub tls: Option<(&'a UpstreamTls, &'a ServerName<'static>)>,
    /// Connect (and handshake) deadline.
    pub limit: Duration,
    /// TCP_NODELAY.
    pub nodelay: bool,
    /// Limits the request head (as the gateway wrote it) is parsed with.
    pub limits: proto::Limits,
    /// How long a body waits for the upstream's window.
    pub send_timeout: Duration,
}

/// The HTTP/2 connections of one upstream group on one shard.
pub struct Mux {
    /// Per target.
    links: RefCell<Vec<Vec<Link>>>,
    conns: usize,
    streams: usize,
}

impl Mux {
    /// Connections for `targets` targets, at most `conns` each with `streams` streams.
    pub fn new(targets: usize, conns: u32, streams: u32) -> Mux {
        Mux {
            links: RefCell::new((0..targets).map(|_| Vec::new()).collect()),
            conns: conns.max(1) as usize,
            streams: streams.max(1) as usize,
        }
    }

    /// A stream to `target`, on a connection of its own or a shared one.
    pub async fn open(&self, target: usize, o: Open<'_>) -> Result<UpstreamStream, ProxyError> {
        let tls = o.tls.is_some();
        let picked = self.pick(target);
        let (send, in_flight) = match picked {
            Some(p) => p,
            None => self.connect(target, &o).await?,
        };
        in_flight.set(in_flight.get() + 1);
        let pipe = Outbound::new(send, tls, o.limits, o.send_timeout, InFlight(in_flight));
        Ok(UpstreamStream::H2Up(Box::new(pipe)))
    }

    /// The least busy live connection to `target`, unless it is full and another may open.
    fn pick(&self, target: usize) -> Option<(SendRequest<Bytes>, Rc<Cell<usize>>)> {
        let mut all = self.links.borrow_mut();
        let links = all.get_mut(target)?;
        links.retain(|l| l.alive.get());
        let best = links.iter().min_by_key(|l| l.in_flight.get())?;
        if best.in_flight.get() >= self.streams && links.len() < self.conns {
            return None;
        }
        Some((best.send.clone(), best.in_flight.clone()))
    }

    /// Opens a connection to `target` and keeps it.
    async fn connect(
        &self,
        target: usize,
        o: &Open<'_>,
    ) -> Result<(SendRequest<Bytes>, Rc<Cell<usize>>), ProxyError> {
        let began = std::time::Instant::now();
        let stream = super::connect::connect(o.addr, o.limit, o.nodelay, o.tls).await?;
        let io = crate::h2::io::H2Io::upstream(stream);
        let io = monoio_compat::StreamWrapper::new_with_buffer_size(io, IO_BUFFER, IO_BUFFER);
        let left = o.limit.saturating_sub(began.elapsed());
        let (send, conn) = match crate::clock::timeout(left, h2::client::handshake(io)).await {
            Ok(Ok(done)) => done,
            Ok(Err(_)) => return Err(ProxyError::UpstreamClosed),
            Err(_) => return Err(ProxyError::UpstreamTimeout),
        };
        let alive = Rc::new(Cell::new(true));
        let ended = alive.clone();
        monoio::spawn(async move {
            let _ = conn.await;
            ended.set(false);
        });
        let in_flight = Rc::new(Cell::new(0));
        if let Some(links) = self.links.borrow_mut().get_mut(target) {
            links.push(Link {
                send: send.clone(),
                alive,
                in_flight: in_flight.clone(),
            });
        }
        Ok((send, in_flight))
    }
}
