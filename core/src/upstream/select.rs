//! Target choice for an upstream group on one shard: the group's balancer over its targets'
//! shard-local state (load, health verdicts from the prober, outlier ejections), the key a
//! hashing balancer needs, and what each attempt's result does to that state.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use conf::{BalanceConf, StartState};
use policy::Exchange;
use policy::balance::breaker::{BreakerConf, Circuit, Transition};
use policy::balance::key::KeySource;
use policy::balance::outlier::{Change, Outlier};
use policy::balance::retry::RetryBudget;
use policy::balance::{Balancer, Kind, Rng, TargetState, pick_target};
use proto::RequestHead;

/// When to try another target (`[upstream.retry]`).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// Statuses retried.
    pub on_status: Box<[u16]>,
    /// Resets and statuses retried for non-idempotent methods too.
    pub non_idempotent: bool,
    /// First backoff.
    pub backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
}

/// How an attempt at a target ended, as far as its health goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Result {
    /// An answer that is not a failure.
    Ok,
    /// A 5xx answer.
    ServerError,
    /// No answer: connect failure, reset, timeout, a malformed answer.
    Failed,
}

/// One group's targets and the choice among them, on one shard.
pub struct Selector {
    /// Per-target state, indexed like the group's targets.
    pub targets: Box<[TargetState]>,
    /// Addresses (health verdicts name targets by address).
    addrs: Box<[SocketAddr]>,
    /// Per-target attempts, errors, connects and reuse, indexed like `targets`.
    pub traffic: Box<[crate::stats::TargetTraffic]>,
    balancer: Balancer,
    key: Option<KeySource>,
    outlier: Outlier,
    count_5xx: bool,
    /// Retries.
    pub retry: RetryPolicy,
    /// This shard's retry budget.
    pub budget: RetryBudget,
    /// Randomness for backoff.
    pub rng: Rng,
    /// The answer while every circuit is open (`None`: a 503 problem).
    pub fallback: Option<policy::LocalReply>,
}

/// The settings a selector is built from.
pub struct SelectConf<'a> {
    /// The group's settings.
    pub conf: &'a conf::UpstreamConf,
    /// Target addresses.
    pub addrs: &'a [SocketAddr],
    /// Target names as written (their identity on a hash ring).
    pub names: &'a [String],
    /// Target weights.
    pub weights: &'a [u32],
}

impl Selector {
    /// The selector of one group for shard `shard`.
    pub fn new(s: &SelectConf<'_>, shard: usize) -> Selector {
        let c = s.conf;
        let kind = match c.balance.get_ref() {
            BalanceConf::RoundRobin => Kind::RoundRobin,
            BalanceConf::WeightedRoundRobin => Kind::WeightedRoundRobin,
            BalanceConf::LeastOutstanding => Kind::LeastOutstanding,
            BalanceConf::P2c => Kind::P2c,
            BalanceConf::RingHash => Kind::RingHash,
            BalanceConf::Maglev => Kind::Maglev,
            BalanceConf::IpHash => Kind::IpHash,
        };
        let key = match kind {
            Kind::IpHash => Some(KeySource::ClientIp),
            Kind::RingHash | Kind::Maglev => Some(
                c.hash_on
                    .as_ref()
                    .map_or(KeySource::ClientIp, |h| KeySource::from(h.get_ref())),
            ),
            _ => None,
        };
        let ids: Vec<&[u8]> = s.names.iter().map(|n| n.as_bytes()).collect();
        let seed = shard as u64;
        let balancer = Balancer::new(kind, &ids, s.weights, seed, *c.hash_load_bound.get_ref());
        let probing = c
            .health
            .as_ref()
            .is_some_and(|h| h.get_ref().start == StartState::Probing);
        let o = c
            .outlier
            .as_ref()
            .map(|o| o.get_ref().clone())
            .unwrap_or_default();
        let r = c
            .retry
            .as_ref()
            .map(|r| r.get_ref().clone())
            .unwrap_or_default();
        let breaker = c.breaker.as_ref().map(|b| b.get_ref());
        let now = Instant::now();
        let fallback = breaker.and_then(|b| {
            let status = b.fallback_status?;
            Some(policy::LocalReply::new(
                status,
                &b.fallback_content_type,
                b.fallback_body.as_bytes(),
                &[],
            ))
        });
        let breaker = breaker.map(|b| BreakerConf {
            window: b.window.0,
            failure_rate: b.failure_rate,
            min_requests: b.min_requests,
            cool_down: b.cool_down.0,
            trials: b.trials,
        });
        let state = |w: u32| {
            let t = TargetState::new(w, probing);
            match breaker {
                Some(b) => t.with_breaker(b, now),
                None => t,
            }
        };
        Selector {
            fallback,
            targets: s.weights.iter().map(|&w| state(w)).collect(),
            traffic: s.weights.iter().map(|_| Default::default()).collect(),
            addrs: s.addrs.into(),
            balancer,
            key,
            outlier: Outlier {
                consecutive: o.consecutive_failures,
                base: o.base_ejection.0,
                max: o.max_ejection.0,
                max_percent: o.max_ejected_percent,
            },
            count_5xx: o.count_5xx,
            retry: RetryPolicy {
                retries: r.retries,
                on_status: r.on_status.iter().map(|s| *s.get_ref()).collect(),
                non_idempotent: r.non_idempotent,
                backoff: r.backoff.0,
                max_backoff: r.max_backoff.0,
            },
            budget: RetryBudget::new(r.budget),
            rng: Rng::new(seed ^ 0x5eed),
        }
    }

    /// The target for this request, preferring ones it has not `tried`.
    #[inline]
    pub fn pick(&self, head: &RequestHead, buf: &[u8], ex: &Exchange, tried: u64) -> Option<usize> {
        self.pick_keyed(self.key(head, buf, ex), ex.now, tried)
    }

    /// Seconds until the first open circuit lets a trial through (at least 1).
    pub fn retry_after(&self, now: Instant) -> u32 {
        let soonest = self
            .targets
            .iter()
            .filter_map(|t| match t.breaker.as_ref()?.0.circuit() {
                Circuit::Open { until } => Some(until.saturating_duration_since(now)),
                _ => None,
            })
            .min()
            .unwrap_or(Duration::ZERO);
        u32::try_from(soonest.as_secs() + u64::from(soonest.subsec_nanos() > 0))
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// Counts a request in flight to target `i` until the guard drops, once its breaker (if
    /// any) lets it go at `now`; `None` when the circuit is open or its trials are all out.
    pub fn begin(self: &Rc<Self>, i: usize, now: Instant) -> Option<InFlight> {
        let t = self.targets.get(i)?;
        if let Some((b, c)) = &t.breaker
            && !b.try_acquire(now, c)
        {
            return None;
        }
        t.in_flight.set(t.in_flight.get().saturating_add(1));
        Some(InFlight {
            selector: self.clone(),
            target: i,
        })
    }

    /// The hash key of this request for the group's balancer (read before the request head
    /// leaves the buffer; retries reuse it).
    pub fn key(&self, head: &RequestHead, buf: &[u8], ex: &Exchange) -> Option<u64> {
        self.key.as_ref().and_then(|k| k.key(head, buf, ex))
    }

    /// The target for a request with `key`, preferring ones it has not `tried`.
    #[inline]
    pub fn pick_keyed(&self, key: Option<u64>, now: Instant, tried: u64) -> Option<usize> {
        pick_target(&self.balancer, &self.targets, now, tried, key)
    }

    /// Records how an attempt at target `i` ended; an ejection or a circuit that opens or
    /// closes is logged.
    pub fn report(&self, i: usize, result: Result, now: Instant, group: &str) {
        if let Some(t) = self.traffic.get(i) {
            match result {
                Result::Ok => {}
                Result::ServerError => crate::stats::bump(&t.server_errors),
                Result::Failed => crate::stats::bump(&t.errors),
            }
        }
        if let Some((b, c)) = self.targets.get(i).and_then(|t| t.breaker.as_ref())
            && let Some(change) = b.record(result == Result::Ok, now, c)
        {
            crate::log!(
                Warn,
                "upstream `{group}`: target {}: circuit {}",
                self.addrs
                    .get(i)
                    .map_or_else(String::new, |a| a.to_string()),
                match change {
                    Transition::Opened => "opened",
                    Transition::Closed => "closed",
                }
            );
        }
        let failed = match result {
            Result::Ok => false,
            Result::ServerError => self.count_5xx,
            Result::Failed => true,
        };
        if !failed {
            self.outlier.success(&self.targets, i, now);
            return;
        }
        if let Change::Ejected(length) = self.outlier.failure(&self.targets, i, now) {
            crate::log!(
                Warn,
                "upstream `{group}`: target {} ejected for {length:?} after {} failures in a row",
                self.addrs
                    .get(i)
                    .map_or_else(String::new, |a| a.to_string()),
                self.outlier.consecutive
            );
        }
    }

    /// Applies an active-check verdict on the target at `addr`; true if it is in this group.
    /// A target checked up again is no longer ejected either (the checks saw it answer; the
    /// count of ejections stays, so a target that fails again is ejected for longer).
    pub fn set_health(&self, addr: SocketAddr, up: bool) -> bool {
        let mut found = false;
        for (t, a) in self.targets.iter().zip(self.addrs.iter()) {
            if *a == addr {
                t.down.set(!up);
                if up {
                    t.failures.set(0);
                    t.ejected_until.set(None);
                }
                found = true;
            }
        }
        found
    }

    /// Takes over `old`'s health verdicts, ejections and failure counts of the targets with
    /// the same address (a group whose targets changed).
    pub fn adopt(&self, old: &Selector) {
        for ((t, a), traffic) in self
            .targets
            .iter()
            .zip(self.addrs.iter())
            .zip(&self.traffic)
        {
            let Some(at) = old.addrs.iter().position(|x| x == a) else {
                continue;
            };
            if let Some(o) = old.traffic.get(at) {
                traffic.adopt(o);
            }
            let Some(o) = old.targets.get(at) else {
                continue;
            };
            t.down.set(o.down.get());
            t.ejected_until.set(o.ejected_until.get());
            t.failures.set(o.failures.get());
            t.ejections.set(o.ejections.get());
        }
    }

    /// Each target's state, the group named `group`.
    pub fn states(&self, group: &str, now: Instant) -> Vec<crate::control::TargetCounters> {
        self.targets
            .iter()
            .zip(self.addrs.iter())
            .zip(&self.traffic)
            .map(|((t, a), traffic)| crate::control::TargetCounters {
                traffic: traffic.snapshot(),
                upstream: group.to_string(),
                addr: *a,
                down: t.down.get(),
                ejected: t.ejected(now),
                ejections: t.ejections.get(),
                circuit: match t.breaker.as_ref().map(|(b, _)| b.circuit()) {
                    None | Some(Circuit::Closed) => "closed",
                    Some(Circuit::Open { .. }) => "open",
                    Some(Circuit::HalfOpen { .. }) => "half_open",
                },
                in_flight: t.in_flight.get(),
            })
            .collect()
    }
}

/// A request in flight to one target; dropping it (however the exchange ended, a cancelled
/// one included) takes it off the count.
pub struct InFlight {
    selector: Rc<Selector>,
    target: usize,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(t) = self.selector.targets.get(self.target) {
            t.in_flight.set(t.in_flight.get().saturating_sub(1));
        }
    }
}
