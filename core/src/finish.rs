//! The end of every exchange: a guard that, exactly once and on every way out (answered,
//! refused, forwarded, failed, aborted, or dropped with its task), runs `on_finish` of the
//! stages that saw the request, counts it, and writes its access-log line.

use std::ops::{Deref, DerefMut};

use policy::{Exchange, Outcome};

use crate::gateway::Gateway;
use crate::shard::Shard;

/// An exchange in progress. Dropping it finishes the exchange: the stages of `ex.route` (or
/// the global ones, for a request never routed) see `on_finish`, then the shard counts it.
pub struct Finish<'a> {
    shard: &'a Shard,
    gateway: &'a Gateway,
    ex: &'a mut Exchange,
}

impl<'a> Finish<'a> {
    /// Starts guarding `ex` (already begun) on `shard` under `gateway`.
    pub fn new(shard: &'a Shard, gateway: &'a Gateway, ex: &'a mut Exchange) -> Finish<'a> {
        shard.stats.requests.set(shard.stats.requests.get() + 1);
        Finish { shard, gateway, ex }
    }
}

impl Deref for Finish<'_> {
    type Target = Exchange;

    fn deref(&self) -> &Exchange {
        self.ex
    }
}

impl DerefMut for Finish<'_> {
    fn deref_mut(&mut self) -> &mut Exchange {
        self.ex
    }
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        if self.ex.outcome == Outcome::Pending {
            // no step recorded an ending: the task was dropped or the client left mid-way
            self.ex.outcome = Outcome::Aborted;
        }
        // the stages that saw the request: its route's, or the global ones when unrouted
        let route = self.ex.route.map(|r| r.0 as usize);
        self.gateway.pipeline(route).on_finish(self.ex);
        self.shard.stats.finish(self.ex);
        let took = std::time::Instant::now().saturating_duration_since(self.ex.now);
        self.gateway.route_stats(route).finish(self.ex, took);
        if let Some(t) = &self.shard.calls {
            let key = route
                .and_then(|r| self.gateway.routes.get(r))
                .map(|r| &r.key);
            t.record(key, self.ex, took);
        }
        if let Some(f) = &self.gateway.access_log {
            let (gw, s) = (self.gateway, self.shard);
            let names = crate::access_log::Names {
                route: route
                    .and_then(|r| gw.routes.get(r))
                    .map(|r| r.name.as_str()),
                upstream: (self.ex.upstream.group)
                    .and_then(|g| gw.upstreams.get(g))
                    .map(|u| u.name.as_str()),
            };
            s.log.record(f, s.id, names, self.ex, took, &s.rng);
        }
    }
}
