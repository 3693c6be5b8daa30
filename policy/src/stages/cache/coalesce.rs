//! Coalescing: while a miss for a key is on its way upstream, the other misses for it wait
//! on its gate (bounded) instead of each going upstream; with `shared = true` the owner
//! also parks other shards' lookups on it (`shared`). A flight ends when what it fetched is
//! stored (its waiters then find it), when its exchange finishes, or, its fetcher never
//! reporting, once its wait is over.

use std::rc::Rc;
use std::time::Duration;

use super::{Cache, Pending, shared};
use crate::cache::table::bump;
use crate::exchange::Exchange;
use crate::gate::Gate;
use crate::stage::Verdict;

/// A miss on its way upstream: its number, the gate its waiters on this shard wait on, when
/// it began (seconds), and the lookups from other shards waiting for it (a shared cache's
/// owner).
pub(super) struct Flight {
    pub(super) id: u64,
    pub(super) gate: Rc<Gate>,
    pub(super) since: u64,
    pub(super) parked: Vec<shared::Parked>,
}

/// Whether a miss that began at `since` may still be waited for at `now` (a fetcher that
/// never reported, its shard gone or reloaded, holds nobody up for longer than `wait`).
pub(super) fn live(f: &Flight, now: u64, wait: Duration) -> bool {
    !f.gate.is_open() && now <= f.since.saturating_add(wait.as_secs() + 1)
}

/// Flights kept before those past their wait are swept out (then again at each doubling).
const SWEEP_FROM: usize = 64;

impl Cache {
    /// A GET miss (or a stale entry to revalidate): the first for its URL goes upstream
    /// holding a gate; later ones wait on it, then find what it stored. A key another shard
    /// owns has already waited for the owner's answer, and waits here once more at most.
    pub(super) fn coalesce(&self, p: &mut Pending, ex: &Exchange) -> Option<Verdict<'_>> {
        let wait = self.coalesce.filter(|_| p.request.get)?;
        let now = ex.unix_secs();
        let inflight = self.inflight.borrow();
        match inflight.get(&p.primary).filter(|f| live(f, now, wait)) {
            Some(f) if ex.waits <= u8::from(p.remote) => {
                bump(&self.table.counts.coalesced, 1);
                Some(Verdict::Wait(f.gate.clone()))
            }
            Some(_) => None,
            None => {
                drop(inflight);
                p.gate = Some(self.start_flight(&p.primary, now, wait).0);
                None
            }
        }
    }

    /// Starts a flight for `primary` at `now`: its gate and number. One that outlived its
    /// wait is ended (its waiters look again), and so, now and then, are all such.
    pub(super) fn start_flight(&self, primary: &[u8], now: u64, wait: Duration) -> (Rc<Gate>, u64) {
        let gate = Rc::new(Gate::new(wait));
        let id = self.flights.get().wrapping_add(1);
        self.flights.set(id);
        let flight = Flight {
            id,
            gate: gate.clone(),
            since: now,
            parked: Vec::new(),
        };
        let mut inflight = self.inflight.borrow_mut();
        let old = inflight.insert(primary.to_vec(), flight);
        let n = inflight.len();
        let mut ended: Vec<(Vec<u8>, Flight)> = Vec::new();
        if n >= SWEEP_FROM && n.is_power_of_two() {
            let expired: Vec<Vec<u8>> = inflight
                .iter()
                .filter(|(_, f)| !live(f, now, wait))
                .map(|(k, _)| k.clone())
                .collect();
            ended.extend(
                expired
                    .into_iter()
                    .filter_map(|k| inflight.remove(&k).map(|f| (k, f))),
            );
        }
        drop(inflight);
        if let Some(old) = old {
            self.end(primary, old);
        }
        for (k, f) in ended {
            self.end(&k, f);
        }
        (gate, id)
    }

    /// Ends the flight `p` started, if it is still the one for its key: its waiters here
    /// wake and look again, the lookups parked on it are answered.
    pub(super) fn release(&self, p: &mut Pending) {
        let Some(g) = p.gate.take() else {
            return;
        };
        let mut inflight = self.inflight.borrow_mut();
        let ours = inflight
            .get(&p.primary)
            .is_some_and(|f| Rc::ptr_eq(&f.gate, &g));
        let flight = if ours {
            inflight.remove(&p.primary)
        } else {
            None
        };
        drop(inflight);
        match flight {
            Some(f) => self.end(&p.primary, f),
            None => g.open(),
        }
    }

    /// Ends flight `id` for `primary` (any flight when `None`: something was stored).
    pub(super) fn end_flight(&self, primary: &[u8], id: Option<u64>) {
        let mut inflight = self.inflight.borrow_mut();
        if id.is_some_and(|id| inflight.get(primary).is_none_or(|f| f.id != id)) {
            return;
        }
        let flight = inflight.remove(primary);
        drop(inflight);
        if let Some(f) = flight {
            self.end(primary, f);
        }
    }

    /// A flight that ended: its gate opens, its parked lookups are answered.
    fn end(&self, primary: &[u8], f: Flight) {
        f.gate.open();
        self.land(primary, f.parked);
    }
}
