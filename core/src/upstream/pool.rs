//! Per-shard keep-alive pools, one list of idle connections per upstream target. Shard-local
//! (`RefCell`, never borrowed across an await); most recently used first.

use std::time::{Duration, Instant};

use crate::stream::UpstreamStream;

/// Idle time after which a pooled connection is checked before reuse.
pub const CHECK_AFTER: Duration = Duration::from_millis(1);

struct Idle {
    stream: UpstreamStream,
    since: Instant,
}

/// Idle connections of one upstream, per target.
pub struct Pool {
    targets: Vec<Vec<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
    /// Where the liveness check reads stray bytes into.
    scratch: Vec<u8>,
}

impl Pool {
    /// A pool for `targets` targets keeping at most `max_idle` idle connections each.
    pub fn new(targets: usize, max_idle: usize, idle_timeout: Duration) -> Pool {
        Pool {
            targets: (0..targets).map(|_| Vec::new()).collect(),
            max_idle,
            idle_timeout,
            scratch: Vec::new(),
        }
    }

    /// Takes the most recently used idle connection to `target` that has not expired.
    /// A connection idle for longer than `CHECK_AFTER` (or any, with `check_alive`: the
    /// request could not be replayed on a fresh connection) is first read without waiting,
    /// and dropped if the peer closed it or sent bytes nobody asked for (a stray `408`, say),
    /// so such bytes are never read as the answer to the next request. Under load connections
    /// come back within microseconds and skip the syscall.
    pub fn checkout(
        &mut self,
        target: usize,
        now: Instant,
        check_alive: bool,
    ) -> Option<UpstreamStream> {
        let list = self.targets.get_mut(target)?;
        while let Some(mut idle) = list.pop() {
            let idle_for = now.saturating_duration_since(idle.since);
            if idle_for >= self.idle_timeout {
                continue;
            }
            if (check_alive || idle_for >= CHECK_AFTER)
                && idle.stream.is_unusable(&mut self.scratch)
            {
                continue;
            }
            return Some(idle.stream);
        }
        None
    }

    /// Returns a connection after a complete exchange.
    pub fn checkin(&mut self, target: usize, stream: UpstreamStream, now: Instant) {
        if stream.is_multiplexed() {
            return;
        }
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

    /// Takes over `from`'s idle connections of the targets that stay, `(old, new)` index
    /// pairs (a group whose targets changed: connections to targets that remain are kept).
    pub fn adopt(&mut self, from: &mut Pool, moves: &[(usize, usize)]) {
        for &(old, new) in moves {
            if let (Some(src), Some(dst)) = (from.targets.get_mut(old), self.targets.get_mut(new)) {
                dst.append(src);
            }
        }
    }

    /// Idle connections held, all targets together.
    pub fn idle(&self) -> usize {
        self.targets.iter().map(Vec::len).sum()
    }
}
