//! Per-shard keep-alive pools, one list of idle connections per upstream target. Shard-local
//! (`RefCell`, never borrowed across an await); most recently used first.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

/// Idle time after which a pooled connection is peeked before reuse.
pub const PEEK_AFTER: Duration = Duration::from_millis(1);

struct Idle {
    stream: TcpStream,
    since: Instant,
}

/// Idle connections of one upstream, per target.
pub struct Pool {
    targets: Vec<Vec<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Pool {
    /// A pool for `targets` targets keeping at most `max_idle` idle connections each.
    pub fn new(targets: usize, max_idle: usize, idle_timeout: Duration) -> Pool {
        Pool {
            targets: (0..targets).map(|_| Vec::new()).collect(),
            max_idle,
            idle_timeout,
        }
    }

    /// Takes the most recently used idle connection to `target` that has not expired.
    /// A connection idle for longer than `PEEK_AFTER` (or any, with `check_alive`: the request
    /// could not be replayed on a fresh connection) is first peeked without blocking, and
    /// skipped if the peer closed it or sent bytes nobody asked for (a stray `408`, say), so
    /// such bytes are never read as the answer to the next request. Under load connections
    /// come back within microseconds and skip the syscall.
    pub fn checkout(
        &mut self,
        target: usize,
        now: Instant,
        check_alive: bool,
    ) -> Option<TcpStream> {
        let list = self.targets.get_mut(target)?;
        while let Some(idle) = list.pop() {
            if now.saturating_duration_since(idle.since) >= self.idle_timeout {
                continue;
            }
            let idle_for = now.saturating_duration_since(idle.since);
            if (check_alive || idle_for >= PEEK_AFTER)
                && crate::sys::idle_connection_unusable(idle.stream.as_raw_fd())
            {
                continue;
            }
            return Some(idle.stream);
        }
        None
    }

    /// Returns a connection after a complete exchange.
    pub fn checkin(&mut self, target: usize, stream: TcpStream, now: Instant) {
        if let Some(list) = self.targets.get_mut(target) {
            if list.len() >= self.max_idle {
                // Drop the oldest: the newest are the likeliest to still be open upstream.
                if list.is_empty() {
                    return;
                }
                list.remove(0);
            }
            list.push(Idle { stream, since: now });
        }
    }
}
