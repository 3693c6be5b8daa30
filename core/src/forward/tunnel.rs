//! After `101 Switching Protocols` (WebSocket): the client and upstream connections spliced
//! as a byte tunnel both ways until both sides closed, one fails, or neither moves a byte for
//! the idle timeout. One task, nothing waits on one direction while the other could move:
//! every read and write is one that does not wait, and with nothing to do the task waits for
//! whichever socket could let a direction go on (readiness waits are cancel-safe: no byte is
//! lost to a cancelled read). A half-close passes through once its direction is drained.

use std::time::Duration;

use policy::Exchange;

use crate::conn::{Conn, Next};
use crate::shard::Shard;
use crate::stream::{Close, Ready, Transport, UpstreamStream};
use crate::sys::Sent;

/// Runs the tunnel between the client of `conn` and `upstream` once the answer that opens it
/// went out: the client bytes already read past its head (`conn.buf`) go first, then
/// `early_down` (upstream bytes past its head); the bytes carried count in the exchange and
/// the tunnel in the shard's counters. The client connection closes after it.
pub(super) async fn run(
    shard: &Shard,
    conn: &mut Conn,
    ex: &mut Exchange,
    mut upstream: UpstreamStream,
    early_down: Vec<u8>,
    idle: Duration,
) -> Next {
    let early_up = std::mem::take(&mut conn.buf);
    let carried = splice(&mut conn.stream, &mut upstream, early_up, early_down, idle).await;
    ex.bytes_in += carried.up;
    ex.bytes_out += carried.down;
    shard.stats.tunnels.set(shard.stats.tunnels.get() + 1);
    Next::Close
}

/// Bytes carried each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Carried {
    /// Client to upstream.
    pub up: u64,
    /// Upstream to client.
    pub down: u64,
}

/// Most bytes read from one side before they are written to the other.
const CHUNK: usize = 16 * 1024;

/// One direction: bytes read from its source not yet taken by its sink.
struct Flow {
    buf: Vec<u8>,
    off: usize,
    /// The source ended (its EOF is passed on once `buf` is empty).
    ended: bool,
    /// The sink was shut down.
    closed: bool,
    moved: u64,
}

impl Flow {
    fn new(early: Vec<u8>) -> Flow {
        Flow {
            buf: early,
            off: 0,
            ended: false,
            closed: false,
            moved: 0,
        }
    }

    fn pending(&self) -> bool {
        self.off < self.buf.len()
    }
}

/// What one turn of a direction did.
enum Turn {
    /// Bytes moved (or an end passed on).
    Moved,
    /// Nothing to do until a socket is ready.
    Idle,
    /// A socket failed: the tunnel is over.
    Failed,
}

/// Splices `client` and `upstream`, first sending what each had already sent past its head
/// (`early_up`: client bytes for the upstream, `early_down`: upstream bytes for the client).
async fn splice<C: Transport, U: Transport>(
    client: &mut C,
    upstream: &mut U,
    early_up: Vec<u8>,
    early_down: Vec<u8>,
    idle: Duration,
) -> Carried {
    let mut up = Flow::new(early_up);
    let mut down = Flow::new(early_down);
    loop {
        let a = step(client, upstream, &mut up).await;
        let b = step(upstream, client, &mut down).await;
        let carried = Carried {
            up: up.moved,
            down: down.moved,
        };
        if matches!(a, Turn::Failed) || matches!(b, Turn::Failed) || (up.closed && down.closed) {
            return carried;
        }
        if matches!(a, Turn::Moved) || matches!(b, Turn::Moved) {
            continue;
        }
        // each direction waits on one socket: its sink while bytes are pending, else its source
        let woke = monoio::select! {
            () = wait(&up, client, upstream) => true,
            () = wait(&down, upstream, client) => true,
            () = monoio::time::sleep(idle) => false,
        };
        if !woke {
            return carried;
        }
    }
}

/// One turn of the direction `from` → `to`.
async fn step<F: Transport, T: Transport>(from: &mut F, to: &mut T, f: &mut Flow) -> Turn {
    if f.closed {
        return Turn::Idle;
    }
    let mut moved = false;
    if f.pending() || to.write_pending() {
        match to.write_ready(f.buf.get(f.off..).unwrap_or_default()) {
            Sent::Took(n) => {
                f.off += n;
                f.moved += n as u64;
                moved = n > 0;
            }
            Sent::Error => return Turn::Failed,
        }
        if f.pending() || to.write_pending() {
            return if moved { Turn::Moved } else { Turn::Idle };
        }
    }
    f.buf.clear();
    f.off = 0;
    if f.ended {
        to.shutdown(Close::Clean).await;
        f.closed = true;
        return Turn::Moved;
    }
    if f.buf.capacity() < CHUNK {
        f.buf.reserve(CHUNK);
    }
    match from.read_ready(&mut f.buf) {
        Ready::Data(_) => Turn::Moved,
        Ready::Eof => {
            f.ended = true;
            Turn::Moved
        }
        Ready::Nothing if moved => Turn::Moved,
        Ready::Nothing => Turn::Idle,
        Ready::Error => Turn::Failed,
    }
}

/// Waits for what lets direction `f` (from `from` to `to`) go on; forever once it closed.
async fn wait<F: Transport, T: Transport>(f: &Flow, from: &F, to: &T) {
    if f.closed {
        std::future::pending::<()>().await;
    } else if f.pending() || to.write_pending() {
        to.writable().await;
    } else {
        from.readable().await;
    }
}
