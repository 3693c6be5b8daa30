//! HTTP/2 with clients: a TLS connection that chose `h2` by ALPN, or a plain one that began
//! with the HTTP/2 preface on an `h2c` listener. The `h2` crate keeps the protocol (frames,
//! HPACK, flow control, stream states, the rapid-reset and error-reset bounds) over `io`,
//! on the shard that accepted the connection; each stream runs as one HTTP/1.1 exchange over
//! a `pipe`, so it is parsed, routed and checked by the same code and stages, and ends in
//! one `on_finish`.
//!
//! | concern | where |
//! |---|---|
//! | the byte stream, control-frame budget | `io` |
//! | request head as HTTP/1.1 | `request` |
//! | a stream as a byte stream | `pipe` |
//! | response as frames | `reply` |
//! | bodies as DATA and trailers, flow control | `unframe` |
//! | a request to an HTTP/2 upstream as bytes | `outbound` (connections: `upstream::mux`) |
//! | gRPC-Web to gRPC and back | `web` |

pub mod io;
pub mod outbound;
pub mod pipe;
pub mod reply;
pub mod request;
pub mod unframe;
pub mod web;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use h2::server::{Connection, SendResponse};
use h2::{Reason, RecvStream};
use policy::TlsInfo;

use crate::listener::ListenerId;
use crate::park::{Parked, Phase};
use crate::shard::Shard;
use crate::stream::{ClientStream, Stream, Transport};

/// Where a connection came from: what each of its streams' exchanges is told.
#[derive(Clone)]
pub struct Origin {
    /// The client's address.
    pub peer: SocketAddr,
    /// The listener.
    pub listener: ListenerId,
    /// Its TLS session, when it has one.
    pub tls: Option<Rc<TlsInfo>>,
}

/// Whether `seen`, the first bytes of a connection, are (the start of) the HTTP/2 preface.
pub fn is_preface(seen: &[u8]) -> bool {
    let n = seen.len().min(proto::h2frame::PREFACE.len());
    n >= 3 && proto::h2frame::PREFACE.get(..n) == seen.get(..n)
}

/// How long a connection that ends (flood, error, drain) may take to send its GOAWAY.
const CLOSING: Duration = Duration::from_secs(1);
/// Read and write buffers of the byte stream under a connection.
const IO_BUFFER: usize = 16 * 1024;

type Conn = Connection<monoio_compat::StreamWrapper<io::H2Io>, Bytes>;

/// Serves an HTTP/2 connection until it closes; `early`: bytes already read from it.
pub async fn serve(shard: Rc<Shard>, stream: ClientStream, early: Vec<u8>, from: Origin) {
    let phase = Rc::new(Cell::new(Phase::Busy));
    let slot = shard.register(stream.fd(), phase.clone());
    Box::pin(connection(&shard, slot, stream, early, from, &phase)).await;
    shard.forget_drain_waker(slot);
    shard.unregister(slot);
}

async fn connection(
    shard: &Rc<Shard>,
    slot: usize,
    stream: ClientStream,
    early: Vec<u8>,
    from: Origin,
    phase: &Rc<Cell<Phase>>,
) {
    let gw = shard.gateway();
    let c = gw.settings.http2.clone();
    let handshake_limit = gw.settings.client_head_timeout;
    drop(gw);
    let flood = Rc::new(io::Flood::default());
    let (per_s, burst) = (c.control_frames_per_s, c.control_frames_burst);
    let io = io::H2Io::new(stream, early, per_s, burst, flood.clone());
    let io = monoio_compat::StreamWrapper::new_with_buffer_size(io, IO_BUFFER, IO_BUFFER);
    let size = |b: conf::ByteSize| u32::try_from(b.0).unwrap_or(u32::MAX);
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(c.max_concurrent_streams)
        .max_header_list_size(size(c.max_header_list))
        .initial_window_size(size(c.stream_window))
        .initial_connection_window_size(size(c.connection_window))
        .max_frame_size(size(c.max_frame))
        .max_send_buffer_size(usize::try_from(c.send_buffer.0).unwrap_or(usize::MAX))
        .max_pending_accept_reset_streams(c.max_pending_resets as usize)
        .max_local_error_reset_streams(Some(c.max_error_resets as usize));
    let mut conn: Conn = match crate::clock::timeout(handshake_limit, b.handshake(io)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(_)) | Err(_) => {
            shard.stats.h2_refused.set(shard.stats.h2_refused.get() + 1);
            return;
        }
    };
    shard
        .stats
        .h2_connections
        .set(shard.stats.h2_connections.get() + 1);
    let active = Rc::new(Cell::new(0usize));
    idle(phase, shard);
    let mut goaway = false;
    loop {
        let event = std::future::poll_fn(|cx| {
            if flood.tripped.get() {
                return Poll::Ready(Event::Flood);
            }
            // registers the waker; the flag above is the answer
            let _ = std::pin::pin!(flood.wake.raised()).poll(cx);
            if !goaway && shard.draining_or_wake(slot, cx.waker()) {
                return Poll::Ready(Event::Drain);
            }
            conn.poll_accept(cx).map(|got| match got {
                Some(Ok(s)) => Event::Stream(Box::new(s)),
                Some(Err(_)) | None => Event::Closed,
            })
        })
        .await;
        match event {
            Event::Stream(s) => {
                let (request, respond) = *s;
                active.set(active.get() + 1);
                phase.set(Phase::Busy);
                let guard = Active {
                    count: active.clone(),
                    phase: phase.clone(),
                    shard: shard.clone(),
                };
                monoio::spawn(serve_stream(
                    shard.clone(),
                    request,
                    respond,
                    from.clone(),
                    guard,
                ));
            }
            Event::Flood => {
                shard.stats.h2_floods.set(shard.stats.h2_floods.get() + 1);
                conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
                break;
            }
            Event::Drain => {
                conn.graceful_shutdown();
                goaway = true;
            }
            Event::Closed => return,
        }
    }
    closing(&mut conn).await;
}

/// What the connection task woke for.
enum Event {
    /// A new stream.
    Stream(Box<(http::Request<RecvStream>, SendResponse<Bytes>)>),
    /// The client flooded it with control frames.
    Flood,
    /// The shard drains: GOAWAY, then finish the open streams.
    Drain,
    /// The connection ended (the client left, or an error, GOAWAY sent).
    Closed,
}

/// Lets a connection that is ending send its GOAWAY (bounded), refusing any stream that
/// still arrives.
async fn closing(conn: &mut Conn) {
    let done = std::future::poll_fn(|cx| {
        loop {
            match conn.poll_accept(cx) {
                Poll::Ready(Some(Ok((_, mut respond)))) => {
                    respond.send_reset(Reason::REFUSED_STREAM)
                }
                Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    });
    let _ = crate::clock::timeout(CLOSING, done).await;
}

/// Marks the connection idle: the shard's sweep ends it when its keep-alive runs out, and
/// drain closes it.
fn idle(phase: &Cell<Phase>, shard: &Shard) {
    let keepalive = shard.gateway().settings.keepalive_timeout;
    phase.set(Phase::Parked(crate::clock::now() + keepalive));
}

/// A stream being served: the last one to end marks its connection idle.
struct Active {
    count: Rc<Cell<usize>>,
    phase: Rc<Cell<Phase>>,
    shard: Rc<Shard>,
}

impl Drop for Active {
    fn drop(&mut self) {
        let left = self.count.get().saturating_sub(1);
        self.count.set(left);
        if left == 0 && self.phase.get() == Phase::Busy {
            idle(&self.phase, &self.shard);
        }
    }
}

/// Serves one stream as one HTTP/1.1 exchange.
async fn serve_stream(
    shard: Rc<Shard>,
    request: http::Request<RecvStream>,
    respond: SendResponse<Bytes>,
    from: Origin,
    _active: Active,
) {
    let (parts, body) = request.into_parts();
    let mut head = Vec::with_capacity(512);
    let framing = request::write_head(&parts, body.is_end_stream(), &mut head);
    let method = proto::Method::from_bytes(parts.method.as_str().as_bytes());
    let gw = shard.gateway();
    let limits = gw.settings.outbound_limits;
    let reply = reply::Reply::new(respond, method, limits, gw.settings.http2.send_timeout.0);
    drop(gw);
    let body = (framing != request::Body::None).then_some(body);
    let pipe = pipe::Pipe::new(head, body, framing == request::Body::Chunked, reply);
    let stream = Stream::H2(Box::new(pipe));
    let conn = Parked::new(stream, from.peer, from.listener, from.tls);
    crate::downstream::serve_stream(&shard, conn).await;
}
