//! After `101 Switching Protocols` (WebSocket): the client and upstream connections spliced
//! as a byte tunnel both ways until both sides closed, one fails, or neither sends for the
//! idle timeout. One task: what either side has ready is read without waiting and written
//! to the other; with nothing ready it waits for either socket (a cancel-safe readiness
//! wait, so no byte is lost to a cancelled read). A half-close passes through.

use std::time::Duration;

use crate::io;
use crate::stream::{Close, Ready, Transport};

/// Bytes carried each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Carried {
    /// Client to upstream.
    pub up: u64,
    /// Upstream to client.
    pub down: u64,
}

/// Read size per side per turn.
const CHUNK: usize = 16 * 1024;

/// One direction's state.
struct Side {
    buf: Vec<u8>,
    /// The reading side closed (its EOF was passed on).
    done: bool,
}

/// Splices `client` and `upstream`, first sending what each had already sent past its head
/// (`early_up`: client bytes for the upstream, `early_down`: upstream bytes for the client).
pub(super) async fn splice<C: Transport, U: Transport>(
    client: &mut C,
    upstream: &mut U,
    early_up: &mut Vec<u8>,
    early_down: &mut Vec<u8>,
    idle: Duration,
) -> Carried {
    let mut carried = Carried {
        up: early_up.len() as u64,
        down: early_down.len() as u64,
    };
    if io::write_all(upstream, early_up, idle).await.is_err()
        || io::write_all(client, early_down, idle).await.is_err()
    {
        return carried;
    }
    let mut a = Side {
        buf: Vec::with_capacity(CHUNK),
        done: false,
    };
    let mut b = Side {
        buf: Vec::with_capacity(CHUNK),
        done: false,
    };
    loop {
        let up = match pass(client, upstream, &mut a, idle).await {
            Some(n) => n,
            None => return carried,
        };
        let down = match pass(upstream, client, &mut b, idle).await {
            Some(n) => n,
            None => return carried,
        };
        carried.up += up;
        carried.down += down;
        if a.done && b.done {
            return carried;
        }
        if up == 0 && down == 0 {
            let woke = monoio::select! {
                () = wait(client, a.done) => true,
                () = wait(upstream, b.done) => true,
                () = monoio::time::sleep(idle) => false,
            };
            if !woke {
                return carried;
            }
        }
    }
}

/// Moves what `from` has ready to `to`; the bytes moved, `None` when the tunnel is over.
async fn pass<F: Transport, T: Transport>(
    from: &mut F,
    to: &mut T,
    side: &mut Side,
    idle: Duration,
) -> Option<u64> {
    if side.done {
        return Some(0);
    }
    side.buf.clear();
    match from.read_ready(&mut side.buf) {
        Ready::Nothing => Some(0),
        Ready::Data(n) => {
            io::write_all(to, &mut side.buf, idle).await.ok()?;
            Some(n as u64)
        }
        Ready::Eof => {
            side.done = true;
            to.shutdown(Close::Clean).await;
            Some(0)
        }
        Ready::Error => None,
    }
}

/// Waits for `s` to be readable, or forever once its side is done.
async fn wait<S: Transport>(s: &S, done: bool) {
    if done {
        std::future::pending::<()>().await;
    }
    s.readable().await;
}
