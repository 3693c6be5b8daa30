//! `scope = "global"`: the rate is the whole fleet's, kept in one bucket per key in Redis.
//! A shard spends tokens it holds, leased in batches from that bucket through its node's
//! broker (`letter::BROKER`, the only thread that speaks to Redis), and asks for the next
//! lease at a low-water mark, so a busy key never waits on Redis. A key with no tokens on
//! this shard waits (`Verdict::Wait`, at most `command_timeout`) for the broker's answer;
//! one the bucket refused is refused here until the time Redis said a token is back. When
//! Redis does not answer in time, `on_redis_down` decides for a second. Leased tokens are
//! spent within `lease_ttl` or dropped: what the fleet may admit beyond the rate is at most
//! the tokens of unexpired leases (each shard holds at most one and a half batches, and a
//! batch is at most burst / (2 × nodes × shards)).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::gate::Gate;
use crate::letter::{Address, BROKER, Letter};
use crate::lru::Lru;

/// A lease request, from a shard to its node's broker.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    /// The Redis key of the bucket.
    pub key: String,
    /// The bucket's key hash on the shard (echoed in the answer).
    pub hash: u64,
    /// Global tokens per millisecond.
    pub per_ms: f64,
    /// Global bucket size.
    pub burst: f64,
    /// Tokens wanted.
    pub want: u32,
    /// How long Redis keeps an idle bucket, in milliseconds.
    pub keep_ms: u64,
}

/// The broker's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// `tokens` granted (0: the bucket is empty; `next_ms` until it holds one).
    Granted {
        /// The bucket's key hash.
        hash: u64,
        /// Tokens granted.
        tokens: u32,
        /// With none granted: milliseconds until the bucket holds one.
        next_ms: u64,
    },
    /// Redis could not be asked (down, slow, refused the script).
    Down {
        /// The bucket's key hash.
        hash: u64,
    },
}

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

/// What the global scope decided for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Admitted; tokens this shard still holds for the key.
    Admit(f64),
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
    /// The bucket said no: refuse without asking until then.
    denied_until: Option<Instant>,
    /// Redis did not answer: `on_redis_down` until then.
    down_until: Option<Instant>,
    /// Requests seen in the current second, and when it began: the key's rate here.
    window: (Instant, u32),
    /// Requests per second seen here in the last whole second.
    seen: f64,
}

/// The stage's global scope on one shard.
pub struct Global {
    /// Redis key of the bucket: this prefix and the key's hash.
    pub prefix: String,
    per_sec: f64,
    burst: f64,
    ttl: Duration,
    wait: Duration,
    max_batch: u32,
    /// What `on_redis_down` says.
    pub down: OnDown,
    address: Address,
    leases: RefCell<Lru<Lease>>,
    /// Figures: leases asked, tokens granted, refusals by the bucket, Redis failures,
    /// requests decided by `on_redis_down`.
    pub counts: [Cell<u64>; 5],
}

/// How long a failed Redis keeps a key on `on_redis_down` before it is asked again.
const DOWN_FOR: Duration = Duration::from_secs(1);

impl Global {
    /// The global scope of a stage at `address`: `per_sec` and `burst` are the fleet's,
    /// `nodes × shards` the copies of the stage that lease.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        prefix: String,
        per_sec: f64,
        burst: f64,
        copies: f64,
        redis: &conf::redis::RedisConf,
        down: OnDown,
        address: Address,
        max_keys: usize,
    ) -> Global {
        Global {
            prefix,
            per_sec,
            burst,
            ttl: redis.lease_ttl.0,
            wait: redis.command_timeout.0,
            max_batch: ((burst / (2.0 * copies)).floor() as u32).max(1),
            down,
            address,
            leases: RefCell::new(Lru::new(max_keys)),
            counts: Default::default(),
        }
    }

    /// Tokens to ask for: what this shard spends of the key in a fifth of a second, within
    /// `max_batch`.
    fn batch(&self, seen: f64) -> u32 {
        ((seen * 0.2).ceil() as u32).clamp(1, self.max_batch)
    }

    fn ask(&self, hash: u64, l: &mut Lease, now: Instant) -> Rc<Gate> {
        let want = self.batch(l.seen);
        let keep_ms = ((self.burst / self.per_sec * 2.0 * 1000.0) as u64).max(60_000);
        crate::letter::post(Letter {
            to: BROKER,
            address: self.address.clone(),
            body: Box::new(Ask {
                key: format!("{}{hash:016x}", self.prefix),
                hash,
                per_ms: self.per_sec / 1000.0,
                burst: self.burst,
                want,
                keep_ms,
            }),
        });
        crate::cache::table::bump(&self.counts[0], 1);
        l.asked = Some(now);
        let gate = Rc::new(Gate::new(self.wait));
        l.gate = Some(gate.clone());
        gate
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
            window: (now, 0),
            seen: 0.0,
        }) else {
            return Decision::Down;
        };
        // the key's rate on this shard, by whole seconds
        let (start, n) = l.window;
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= Duration::from_secs(1) {
            l.seen = f64::from(n) / elapsed.as_secs_f64();
            l.window = (now, 1);
        } else {
            l.window.1 = n.saturating_add(1);
            l.seen = l.seen.max(f64::from(l.window.1));
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
            crate::cache::table::bump(&self.counts[3], 1);
            return Decision::Down;
        }
        if now >= l.expires {
            l.tokens = 0.0;
        }
        if l.tokens >= 1.0 {
            l.tokens -= 1.0;
            let low = f64::from(self.batch(l.seen)) / 2.0;
            if l.tokens < low && l.asked.is_none() && l.denied_until.is_none_or(|t| now >= t) {
                self.ask(hash, l, now);
            }
            return Decision::Admit(l.tokens);
        }
        if let Some(until) = l.denied_until.filter(|&t| now < t) {
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
                tokens, next_ms, ..
            } => {
                crate::cache::table::bump(&self.counts[1], u64::from(tokens));
                l.tokens += f64::from(tokens);
                l.expires = asked + self.ttl;
                l.denied_until = if tokens == 0 {
                    crate::cache::table::bump(&self.counts[2], 1);
                    Some(asked + Duration::from_millis(next_ms.max(1)))
                } else {
                    None
                };
                l.down_until = None;
            }
            Reply::Down { .. } => {
                crate::cache::table::bump(&self.counts[3], 1);
                l.down_until = Some(asked + DOWN_FOR);
            }
        }
        if let Some(g) = l.gate.take() {
            g.open();
        }
    }

    /// Counts a request `on_redis_down` decided.
    pub fn count_down(&self) {
        crate::cache::table::bump(&self.counts[4], 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(burst: f64, copies: f64) -> Global {
        let redis: conf::redis::RedisConf =
            match toml::from_str("lease_ttl = \"1s\"\ncommand_timeout = \"100ms\"") {
                Ok(r) => r,
                Err(e) => panic!("{e}"),
            };
        Global::new(
            "p:".into(),
            100.0,
            burst,
            copies,
            &redis,
            OnDown::Local,
            Address::default(),
            100,
        )
    }

    fn asks() -> Vec<Ask> {
        crate::letter::take()
            .into_iter()
            .filter_map(|l| l.body.downcast::<Ask>().ok().map(|a| *a))
            .collect()
    }

    #[test]
    fn a_key_waits_for_its_first_lease_then_spends_and_asks_again_before_running_out() {
        let g = global(40.0, 2.0);
        let t0 = Instant::now();
        let Decision::Wait(gate) = g.decide(7, t0) else {
            panic!("no wait");
        };
        // a second request meanwhile waits on the same answer
        assert_eq!(g.decide(7, t0), Decision::Wait(gate.clone()));
        let sent = asks();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (sent[0].key.as_str(), sent[0].want),
            ("p:0000000000000007", 1)
        );
        g.answer(Reply::Granted {
            hash: 7,
            tokens: 6,
            next_ms: 0,
        });
        assert!(gate.is_open());
        for left in [5.0, 4.0, 3.0, 2.0, 1.0, 0.0] {
            assert_eq!(g.decide(7, t0), Decision::Admit(left));
        }
        // the batch grew with the key's rate here (8 requests seen): 2 tokens, asked below 1
        let again = asks();
        assert_eq!((again.len(), again[0].want), (1, 2));
        g.answer(Reply::Granted {
            hash: 7,
            tokens: 2,
            next_ms: 0,
        });
        // the lease expires a second after it was asked for
        assert!(matches!(
            g.decide(7, t0 + Duration::from_millis(1001)),
            Decision::Wait(_)
        ));
    }

    #[test]
    fn an_empty_bucket_refuses_until_redis_said_and_a_silent_broker_means_down() {
        let g = global(40.0, 2.0);
        let t0 = Instant::now();
        let _ = g.decide(1, t0);
        g.answer(Reply::Granted {
            hash: 1,
            tokens: 0,
            next_ms: 2500,
        });
        assert_eq!(
            g.decide(1, t0 + Duration::from_millis(10)),
            Decision::Refuse(3)
        );
        assert!(matches!(
            g.decide(1, t0 + Duration::from_millis(2500)),
            Decision::Wait(_)
        ));
        let _ = asks();
        // no answer within command_timeout: down for a second, then asked again
        let late = t0 + Duration::from_millis(2601);
        assert_eq!(g.decide(1, late), Decision::Down);
        assert_eq!(
            g.decide(1, late + Duration::from_millis(500)),
            Decision::Down
        );
        assert!(matches!(
            g.decide(1, late + Duration::from_millis(1000)),
            Decision::Wait(_)
        ));
        // the broker saying Redis is down is the same
        g.answer(Reply::Down { hash: 1 });
        assert_eq!(
            g.decide(1, late + Duration::from_millis(1001)),
            Decision::Down
        );
        assert_eq!(g.counts[3].get(), 2);
    }

    #[test]
    fn batches_are_bounded_by_the_burst_over_every_copy() {
        let g = global(40.0, 4.0);
        assert_eq!((g.batch(0.0), g.batch(10.0), g.batch(1000.0)), (1, 2, 5));
    }
}
