//! Leases from Redis for `scope = "global"` rate limits and for quotas: the limit is the
//! whole fleet's, kept in one record per key in Redis (a token bucket, or a count per
//! calendar window). A shard spends tokens it holds, leased in batches through its node's
//! broker (`letter::BROKER`, the only thread that speaks to Redis), and asks for the next
//! lease at a low-water mark, so a busy key never waits on Redis. A key with no tokens on
//! this shard waits (`Verdict::Wait`, at most `command_timeout`) for the broker's answer;
//! one Redis refused is refused here until the time Redis said one is back. When Redis does
//! not answer in time, `on_redis_down` decides for a second.
//!
//! Bucket tokens are spent within `lease_ttl` or dropped: what the fleet may admit beyond the
//! rate is at most the tokens of unexpired leases (each shard holds at most one and a half
//! batches, and a batch is at most burst / (2 × nodes × shards)). Quota tokens are counted
//! when leased, so a quota is never exceeded; unspent ones are handed back after `lease_ttl`
//! (`sweep`), so none is lost while the window lasts.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

mod wire;

pub use wire::{Ask, GiveBack, Period, Pool, Reply};

use crate::gate::Gate;
use crate::letter::{Address, BROKER, Letter};
use crate::lru::Lru;

/// What `on_redis_down` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDown {
    /// Admit this node's share of the rate (the node-scope buckets, rate / nodes).
    Local,
    /// Refuse (503).
    Deny,
    /// Admit everything.
    Allow,
}

/// What the shard holds of a key when it admits a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Held {
    /// Tokens this shard still holds.
    pub tokens: f64,
    /// A quota: tokens Redis said were left in the window, besides those held here.
    pub left: u64,
    /// A quota: time until its window ends.
    pub resets_in: Option<Duration>,
}

/// What the lease decided for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Admitted.
    Admit(Held),
    /// Refused for this many seconds (at least 1).
    Refuse(u64),
    /// Wait for the broker's answer, then decide again.
    Wait(Rc<Gate>),
    /// Redis is away: `on_redis_down` decides.
    Down,
}

/// One key's lease on this shard.
struct Lease {
    tokens: f64,
    expires: Instant,
    /// When the lease request now out was sent.
    asked: Option<Instant>,
    gate: Option<Rc<Gate>>,
    /// Redis said no: refuse without asking until then.
    denied_until: Option<Instant>,
    /// Redis did not answer: `on_redis_down` until then.
    down_until: Option<Instant>,
    /// Requests seen in the current second, and when it began: the key's rate here.
    counting: (Instant, u32),
    /// Requests per second seen here in the last whole second.
    seen: f64,
    /// A quota: left in the window after the last grant, the window's start, its end.
    left: u64,
    window: u64,
    resets: Option<Instant>,
}

/// What a stage leases, besides `[redis]`.
pub struct Spec {
    /// Redis key of a record: this prefix and the key's hash.
    pub prefix: String,
    /// What tokens are drawn from.
    pub pool: Pool,
    /// Most tokens asked for at once.
    pub max_batch: u32,
    /// What `on_redis_down` says.
    pub down: OnDown,
    /// The stage's address (answers come back to it).
    pub address: Address,
    /// Keys held per shard.
    pub max_keys: usize,
}

/// A stage's leases on one shard.
pub struct Global {
    prefix: String,
    pool: Pool,
    ttl: Duration,
    wait: Duration,
    max_batch: u32,
    /// What `on_redis_down` says.
    pub down: OnDown,
    address: Address,
    leases: RefCell<Lru<Lease>>,
    /// Most entries in `held` (beyond it, a lease is handed back when its key is next seen).
    max_held: usize,
    /// Quota leases granted, by expiry: the ones `sweep` may hand back.
    held: RefCell<VecDeque<(Instant, u64)>>,
    /// Raised when `held` gains its first entry: the sweep has work again.
    pub wake: crate::task::Wake,
    /// Figures: leases asked, tokens granted, refusals by Redis, Redis failures, requests
    /// decided by `on_redis_down`, tokens handed back.
    pub counts: [Cell<u64>; 6],
}

/// How long a failed Redis keeps a key on `on_redis_down` before it is asked again.
const DOWN_FOR: Duration = Duration::from_secs(1);

fn bump(c: &Cell<u64>, n: u64) {
    crate::cache::table::bump(c, n);
}

impl Global {
    /// A stage's leases, from `spec` and `[redis]`.
    pub fn new(spec: Spec, redis: &conf::redis::RedisConf) -> Global {
        Global {
            prefix: spec.prefix,
            pool: spec.pool,
            ttl: redis.lease_ttl.0,
            wait: redis.command_timeout.0,
            max_batch: spec.max_batch.max(1),
            down: spec.down,
            address: spec.address,
            leases: RefCell::new(Lru::new(spec.max_keys)),
            max_held: spec.max_keys.saturating_mul(2),
            held: RefCell::new(VecDeque::new()),
            wake: crate::task::Wake::default(),
            counts: Default::default(),
        }
    }

    /// Tokens to ask for: what this shard spends of the key in a fifth of a second, within
    /// `max_batch`.
    fn batch(&self, seen: f64) -> u32 {
        ((seen * 0.2).ceil() as u32).clamp(1, self.max_batch)
    }

    fn key(&self, hash: u64) -> String {
        format!("{}{hash:016x}", self.prefix)
    }

    fn ask(&self, hash: u64, l: &mut Lease, now: Instant) -> Rc<Gate> {
        crate::letter::post(Letter {
            to: BROKER,
            address: self.address.clone(),
            body: Box::new(Ask {
                key: self.key(hash),
                hash,
                want: self.batch(l.seen),
                pool: self.pool,
            }),
        });
        bump(&self.counts[0], 1);
        l.asked = Some(now);
        let gate = Rc::new(Gate::new(self.wait));
        l.gate = Some(gate.clone());
        gate
    }

    /// Hands a quota lease's unspent tokens back to its window (while it lasts).
    fn give_back(&self, hash: u64, l: &mut Lease, now: Option<Instant>) {
        let whole = l.tokens.floor() as u32;
        l.tokens = 0.0;
        let current = match (now, l.resets) {
            (Some(now), Some(r)) => now < r,
            (None, Some(_)) => true,
            _ => false,
        };
        if whole == 0 || !current || !matches!(self.pool, Pool::Quota { .. }) {
            return;
        }
        crate::letter::post(Letter {
            to: BROKER,
            address: self.address.clone(),
            body: Box::new(GiveBack {
                key: self.key(hash),
                tokens: whole,
                window: l.window,
            }),
        });
        bump(&self.counts[5], u64::from(whole));
    }

    /// Decides a request for the key `hash` at `now`.
    pub fn decide(&self, hash: u64, now: Instant) -> Decision {
        let mut leases = self.leases.borrow_mut();
        let Some(l) = leases.get_or_insert_with(hash, || Lease {
            tokens: 0.0,
            expires: now,
            asked: None,
            gate: None,
            denied_until: None,
            down_until: None,
            counting: (now, 0),
            seen: 0.0,
            left: 0,
            window: 0,
            resets: None,
        }) else {
            return Decision::Down;
        };
        // the key's rate on this shard, by whole seconds
        let (start, n) = l.counting;
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= Duration::from_secs(1) {
            l.seen = f64::from(n) / elapsed.as_secs_f64();
            l.counting = (now, 1);
        } else {
            l.counting.1 = n.saturating_add(1);
            l.seen = l.seen.max(f64::from(l.counting.1));
        }
        if l.down_until.is_some_and(|t| now < t) {
            return Decision::Down;
        }
        if l.asked.is_some_and(|t| now >= t + self.wait) {
            // the broker did not answer in time: Redis is slow or away
            l.asked = None;
            l.down_until = Some(now + DOWN_FOR);
            if let Some(g) = l.gate.take() {
                g.open();
            }
            bump(&self.counts[3], 1);
            return Decision::Down;
        }
        if now >= l.expires && l.tokens > 0.0 {
            self.give_back(hash, l, Some(now));
        }
        if l.tokens >= 1.0 {
            l.tokens -= 1.0;
            let low = f64::from(self.batch(l.seen)) / 2.0;
            if l.tokens < low && l.asked.is_none() && l.denied_until.is_none_or(|t| now >= t) {
                self.ask(hash, l, now);
            }
            return Decision::Admit(Held {
                tokens: l.tokens,
                left: l.left,
                resets_in: l.resets.map(|r| r.saturating_duration_since(now)),
            });
        }
        if let Some(until) = l.denied_until.filter(|&t| now < t) {
            // a spent quota is asked again after a lease's time (others may hand tokens
            // back), but its refusals say when the window ends
            let until = l.resets.map_or(until, |r| r.max(until));
            let secs = until.saturating_duration_since(now).as_secs_f64().ceil() as u64;
            return Decision::Refuse(secs.max(1));
        }
        match (&l.gate, l.asked) {
            (Some(g), Some(_)) => Decision::Wait(g.clone()),
            _ => Decision::Wait(self.ask(hash, l, now)),
        }
    }

    /// Takes the broker's answer.
    pub fn answer(&self, reply: Reply) {
        let hash = match reply {
            Reply::Granted { hash, .. } | Reply::Down { hash } => hash,
        };
        let mut leases = self.leases.borrow_mut();
        let Some(l) = leases.get(hash) else {
            return;
        };
        // times count from the ask: a lease is never held longer than `lease_ttl`
        let Some(asked) = l.asked.take() else {
            return;
        };
        match reply {
            Reply::Granted {
                tokens,
                next_ms,
                left,
                window,
                ..
            } => {
                bump(&self.counts[1], u64::from(tokens));
                if tokens == 0 {
                    bump(&self.counts[2], 1);
                }
                let next = asked + Duration::from_millis(next_ms.max(1));
                match self.pool {
                    Pool::Bucket { .. } => {
                        l.tokens += f64::from(tokens);
                        l.expires = asked + self.ttl;
                        l.denied_until = (tokens == 0).then_some(next);
                    }
                    Pool::Quota { .. } => {
                        if window != l.window {
                            // tokens of a window that ended are not this one's
                            l.tokens = 0.0;
                        }
                        l.tokens += f64::from(tokens);
                        l.left = left;
                        l.window = window;
                        l.resets = Some(next);
                        l.expires = (asked + self.ttl).min(next);
                        l.denied_until = (tokens == 0).then_some(l.expires);
                        let mut held = self.held.borrow_mut();
                        if tokens > 0 && held.len() < self.max_held {
                            held.push_back((l.expires, hash));
                            if held.len() == 1 {
                                self.wake.raise();
                            }
                        }
                    }
                }
                l.down_until = None;
            }
            Reply::Down { .. } => {
                bump(&self.counts[3], 1);
                l.down_until = Some(asked + DOWN_FOR);
            }
        }
        if let Some(g) = l.gate.take() {
            g.open();
        }
    }

    /// Hands back the unspent tokens of quota leases expired by `now`; when to sweep next.
    pub fn sweep(&self, now: Instant) -> Option<Instant> {
        let mut leases = self.leases.borrow_mut();
        let mut held = self.held.borrow_mut();
        while let Some(&(at, hash)) = held.front() {
            if at > now {
                return Some(at);
            }
            held.pop_front();
            if let Some(l) = leases.get(hash) {
                // a later lease of the key is in `held` on its own
                if l.expires <= now && l.asked.is_none() && l.tokens >= 1.0 {
                    self.give_back(hash, l, Some(now));
                }
            }
        }
        None
    }

    /// Counts a request `on_redis_down` decided.
    pub fn count_down(&self) {
        bump(&self.counts[4], 1);
    }
}

impl Drop for Global {
    /// A config replaced or a gateway stopping hands its quota tokens back (Redis leaves a
    /// window that ended alone).
    fn drop(&mut self) {
        let mut leases = self.leases.borrow_mut();
        for &(_, hash) in self.held.borrow().iter() {
            if let Some(l) = leases.get(hash) {
                self.give_back(hash, l, None);
            }
        }
    }
}

#[cfg(test)]
mod tests;
