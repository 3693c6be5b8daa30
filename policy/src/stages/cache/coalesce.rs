//! Coalescing: while a miss for a key is on its way upstream, the other misses for it wait
//! on its gate (once, bounded) instead of each going upstream; with `shared = true` the
//! owner also parks other shards' lookups on it (`shared`).

use std::rc::Rc;
use std::time::Duration;

use super::{Cache, Pending, shared};
use crate::cache::table::bump;
use crate::exchange::Exchange;
use crate::gate::Gate;
use crate::stage::Verdict;

/// A miss on its way upstream: the gate its waiters on this shard wait on, when it began
/// (seconds), and the lookups from other shards waiting for it (a shared cache's owner).
pub(super) struct Flight {
    pub(super) gate: Rc<Gate>,
    pub(super) since: u64,
    pub(super) parked: Vec<shared::Parked>,
}

/// Whether a miss that began at `since` may still be waited for at `now` (a filler that
/// never reported, its shard gone or reloaded, holds nobody up for longer than `wait`).
pub(super) fn live(f: &Flight, now: u64, wait: Duration) -> bool {
    !f.gate.is_open() && now <= f.since.saturating_add(wait.as_secs() + 1)
}

impl Cache {
    /// A GET miss: the first for its URL goes upstream holding a gate; later ones wait on it
    /// (once), then find what it stored.
    pub(super) fn coalesce(&self, p: &mut Pending, ex: &Exchange) -> Option<Verdict<'_>> {
        let wait = self.coalesce.filter(|_| p.request.get)?;
        let now = ex.unix_secs();
        let mut inflight = self.inflight.borrow_mut();
        match inflight.get(&p.primary).filter(|f| live(f, now, wait)) {
            Some(f) if !ex.waited => {
                bump(&self.table.counts.coalesced, 1);
                Some(Verdict::Wait(f.gate.clone()))
            }
            Some(_) => None,
            None => {
                let gate = Rc::new(Gate::new(wait));
                let old = inflight.insert(
                    p.primary.clone(),
                    Flight {
                        gate: gate.clone(),
                        since: now,
                        parked: Vec::new(),
                    },
                );
                p.gate = Some(gate);
                drop(inflight);
                if let Some(old) = old {
                    // one that outlived its wait: whoever waited for it looks again
                    self.land(&p.primary, old);
                }
                None
            }
        }
    }
}
