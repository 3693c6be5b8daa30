//! A shard's state: its current compiled config, open connections (for drain), spare
//! upstream buffers, counters and the Date cache. Shard-local: `Rc`, `Cell`, `RefCell`.

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Instant;

use policy::task::Wake;
use policy::{Exchange, Outcome};

use crate::control::ShardCounters;
use crate::gateway::Gateway;
use crate::park::Phase;
use crate::stats::{bump, class_index};

/// Per-shard counters, read by the counters message.
#[derive(Debug, Default)]
pub struct Stats {
    /// Client connections accepted.
    pub accepted: Cell<u64>,
    /// Connections answered 503 over `max_connections`.
    pub over_limit: Cell<u64>,
    /// Exchanges begun.
    pub requests: Cell<u64>,
    /// Exchanges finished.
    pub finished: Cell<u64>,
    /// Finished by outcome (answered, refused, forwarded, failed, aborted).
    pub outcomes: [Cell<u64>; 5],
    /// Finished by status class (none, 1xx … 5xx).
    pub classes: [Cell<u64>; 6],
    /// TLS handshakes completed: full TLS 1.2, full TLS 1.3, resumed.
    pub tls_handshakes: [Cell<u64>; 3],
    /// TLS handshakes failed, by `tls::handshake::Failure` reason.
    pub tls_failures: [Cell<u64>; 8],
    /// Attempts that were retries to another target.
    pub retries: Cell<u64>,
    /// Upgraded connections (tunnels) that ended.
    pub tunnels: Cell<u64>,
    /// HTTP/2 connections that completed their preface and SETTINGS.
    pub h2_connections: Cell<u64>,
    /// HTTP/2 connections whose preface or SETTINGS failed or came too late.
    pub h2_refused: Cell<u64>,
    /// HTTP/2 connections ended with ENHANCE_YOUR_CALM for a flood of control frames.
    pub h2_floods: Cell<u64>,
}

impl Stats {
    /// Counts a completed client handshake.
    pub fn tls_handshake(&self, info: &policy::TlsInfo) {
        let i = match (info.resumed, info.version) {
            (true, _) => 2,
            (false, "TLSv1.3") => 1,
            (false, _) => 0,
        };
        if let Some(c) = self.tls_handshakes.get(i) {
            bump(c);
        }
    }

    /// Counts a failed client handshake.
    pub fn tls_failure(&self, why: crate::tls::handshake::Failure) {
        if let Some(c) = self.tls_failures.get(why.index()) {
            bump(c);
        }
    }

    /// Counts a finished exchange.
    pub fn finish(&self, ex: &Exchange) {
        bump(&self.finished);
        self.retries
            .set(self.retries.get() + u64::from(ex.upstream.retries));
        let outcome = match ex.outcome {
            Outcome::Answered => 0,
            Outcome::Refused => 1,
            Outcome::Forwarded => 2,
            Outcome::Failed => 3,
            Outcome::Aborted | Outcome::Pending => 4,
        };
        if let Some(c) = self.outcomes.get(outcome) {
            bump(c);
        }
        if let Some(c) = self.classes.get(class_index(ex.status)) {
            bump(c);
        }
    }
}

/// Every upstream target's state in `gw`.
fn targets(gw: &Gateway) -> Vec<crate::control::TargetCounters> {
    let now = std::time::Instant::now();
    gw.upstreams
        .iter()
        .flat_map(|u| u.select.states(&u.name, now))
        .collect()
}

/// Open client connections: their fds and where each stands, so drain can close idle ones at
/// once and the sweep the parked ones whose keep-alive ran out.
#[derive(Default)]
struct Registry {
    slots: Vec<Option<(RawFd, Rc<Cell<Phase>>)>>,
    free: Vec<usize>,
    open: usize,
}

/// A shard's state.
pub struct Shard {
    /// Shard number.
    pub id: usize,
    /// The config new requests use; an exchange keeps the one it started with.
    gateway: RefCell<Rc<Gateway>>,
    /// Set once drain began: answer with `Connection: close` and stop.
    pub draining: Cell<bool>,
    conns: RefCell<Registry>,
    /// Raised when the last connection closes during drain.
    pub drained: Wake,
    /// HTTP/2 connections waiting to hear that drain began (to send GOAWAY), by registry
    /// slot.
    on_drain: RefCell<ahash::AHashMap<usize, std::task::Waker>>,
    /// Upstream read buffers not in use: an exchange borrows one, so idle client
    /// connections hold none.
    buffers: RefCell<Vec<Vec<u8>>>,
    /// Counters.
    pub stats: Stats,
    /// The Date of answers the gateway makes itself, re-rendered once a second.
    date: proto::date::DateCache,
    /// What the current gateway was built from, to build it again (discovery, reload).
    pub source: Source,
    /// The stage tasks running on this shard (a reload starts only the new ones).
    tasks: RefCell<Vec<std::rc::Weak<dyn policy::task::Task>>>,
    /// Randomness for request ids, span ids and log sampling (seeded by the OS).
    pub rng: policy::balance::Rng,
    /// The access log's lines on their way to the shard's writer.
    pub log: crate::access_log::Sink,
    /// The listeners it accepts on.
    pub listening: RefCell<Vec<crate::listener::Listening>>,
    /// Call analytics since the management thread last took them (`[management]`).
    pub calls: Option<crate::calls::Tally>,
}

/// What a shard's gateway is built from.
pub struct Source {
    /// The configuration (with discovered targets as last heard).
    pub config: RefCell<std::sync::Arc<conf::Config>>,
    /// Shards in all.
    pub shards: usize,
    /// The session-ticket secret every shard shares.
    pub secret: std::sync::Arc<crate::tls::tickets::TicketSecret>,
}

/// A seed from the OS's randomness (the time, if it has none to give).
fn os_seed() -> u64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    match ring::rand::SystemRandom::new().fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    }
}

/// Free upstream buffers kept per shard; beyond this they are released.
const SPARE_BUFFERS: usize = 256;

impl Shard {
    /// Shard `id` serving `gateway`, built from `source`.
    pub fn new(id: usize, gateway: Gateway, source: Source) -> Shard {
        let managed = source.config.borrow().management.is_some();
        let calls = managed.then(crate::calls::Tally::default);
        Shard {
            source,
            tasks: RefCell::default(),
            id,
            gateway: RefCell::new(Rc::new(gateway)),
            draining: Cell::new(false),
            conns: RefCell::default(),
            drained: Wake::default(),
            on_drain: RefCell::default(),
            buffers: RefCell::default(),
            stats: Stats::default(),
            date: proto::date::DateCache::default(),
            rng: policy::balance::Rng::new(os_seed() ^ id as u64),
            log: crate::access_log::Sink::default(),
            listening: RefCell::default(),
            calls,
        }
    }

    /// The config for a new exchange.
    #[inline]
    pub fn gateway(&self) -> Rc<Gateway> {
        self.gateway.borrow().clone()
    }

    /// Applies a health verdict to the current config's groups that have the target.
    pub fn apply_health(&self, v: &crate::control::Verdict) {
        let gw = self.gateway();
        let mut known = false;
        for u in gw.upstreams.iter().filter(|u| *u.name == *v.upstream) {
            known |= u.select.set_health(v.target, v.up);
        }
        if !known {
            crate::log!(
                Debug,
                "shard {}: health verdict for unknown target {} of `{}`",
                self.id,
                v.target,
                v.upstream
            );
        }
    }

    /// Rebuilds the gateway with a group's new targets (discovery): exchanges in flight
    /// finish on the old one; targets that stay keep their idle connections and state.
    pub fn apply_targets(&self, t: &crate::control::TargetSet) {
        let mut config = (**self.source.config.borrow()).clone();
        let Some(u) = config.upstreams.iter_mut().find(|u| *u.name == *t.upstream) else {
            return;
        };
        crate::upstream::discovery::set(u, &t.targets);
        self.apply_config(std::sync::Arc::new(config));
    }

    /// Switches new exchanges to a new `config` (reloaded, or with discovered targets), built
    /// here from it, taking over pools, breakers and stage state whose definitions did not
    /// change; false if it did not build.
    pub fn apply_config(&self, config: std::sync::Arc<conf::Config>) -> bool {
        let old = self.gateway();
        match Gateway::build(
            &config,
            self.source.shards,
            self.id,
            Some(&old),
            &self.source.secret,
        ) {
            Ok(gw) => {
                *self.source.config.borrow_mut() = config;
                self.swap(gw);
                self.start_tasks();
                true
            }
            Err(e) => {
                crate::log!(Warn, "shard {}: new config not applied: {e}", self.id);
                false
            }
        }
    }

    /// Starts the background tasks of the current config's stages that are not running yet.
    pub fn start_tasks(self: &Shard) {
        let mut running = self.tasks.borrow_mut();
        running.retain(|w| w.strong_count() > 0);
        for task in self.gateway().tasks() {
            let known = running
                .iter()
                .any(|w| w.upgrade().is_some_and(|t| Rc::ptr_eq(&t, &task)));
            if !known {
                running.push(Rc::downgrade(&task));
                monoio::spawn(crate::tasks::run(self.id, Rc::downgrade(&task)));
            }
        }
    }

    /// Switches new exchanges to `gateway` (in-flight ones finish on theirs).
    pub fn swap(&self, gateway: Gateway) {
        *self.gateway.borrow_mut() = Rc::new(gateway);
    }

    /// `Date: <IMF-fixdate>\r\n` for an answer the gateway makes itself (RFC 9110 §6.6.1).
    #[inline]
    pub fn date_field(&self) -> [u8; proto::date::DATE_FIELD_LEN] {
        self.date.field()
    }

    /// An empty upstream read buffer of `capacity`.
    pub fn take_buffer(&self, capacity: usize) -> Vec<u8> {
        match self.buffers.borrow_mut().pop() {
            Some(b) if b.capacity() == capacity => b,
            _ => Vec::with_capacity(capacity),
        }
    }

    /// Returns a buffer from `take_buffer` (one lost to a cancelled read is not returned).
    pub fn give_buffer(&self, mut b: Vec<u8>, capacity: usize) {
        if b.capacity() == capacity {
            let mut spare = self.buffers.borrow_mut();
            if spare.len() < SPARE_BUFFERS {
                b.clear();
                spare.push(b);
            }
        }
    }

    /// Records an open client connection; returns its slot.
    pub fn register(&self, fd: RawFd, phase: Rc<Cell<Phase>>) -> usize {
        let mut r = self.conns.borrow_mut();
        r.open += 1;
        match r.free.pop() {
            Some(i) => {
                if let Some(s) = r.slots.get_mut(i) {
                    *s = Some((fd, phase));
                }
                i
            }
            None => {
                r.slots.push(Some((fd, phase)));
                r.slots.len() - 1
            }
        }
    }

    /// Forgets a closed connection.
    pub fn unregister(&self, slot: usize) {
        let mut r = self.conns.borrow_mut();
        if let Some(s) = r.slots.get_mut(slot)
            && s.take().is_some()
        {
            r.open -= 1;
            r.free.push(slot);
        }
        if r.open == 0 && self.draining.get() {
            self.drained.raise();
        }
    }

    /// Whether drain began; if not, `waker` (of the connection in registry `slot`) is woken
    /// when it does.
    pub fn draining_or_wake(&self, slot: usize, waker: &std::task::Waker) -> bool {
        if self.draining.get() {
            return true;
        }
        let mut w = self.on_drain.borrow_mut();
        match w.get_mut(&slot) {
            Some(old) if old.will_wake(waker) => {}
            Some(old) => old.clone_from(waker),
            None => {
                w.insert(slot, waker.clone());
            }
        }
        false
    }

    /// Forgets the waker of the connection in registry `slot` (it closed).
    pub fn forget_drain_waker(&self, slot: usize) {
        self.on_drain.borrow_mut().remove(&slot);
    }

    /// Wakes every connection waiting for drain (it began).
    pub fn wake_drain_waiters(&self) {
        let all = std::mem::take(&mut *self.on_drain.borrow_mut());
        for (_, w) in all {
            w.wake();
        }
    }

    /// Open client connections.
    pub fn open_connections(&self) -> usize {
        self.conns.borrow().open
    }

    /// Ends the wait of every idle connection (its pending read sees EOF).
    pub fn close_idle(&self) {
        for (fd, phase) in self.conns.borrow().slots.iter().flatten() {
            if phase.get().idle() {
                crate::sys::shutdown_read(*fd);
            }
        }
    }

    /// Idle keep-alive connections parked now (counted on demand: a scrape, not a request,
    /// pays for it).
    pub fn parked_connections(&self) -> usize {
        let r = self.conns.borrow();
        r.slots
            .iter()
            .flatten()
            .filter(|(_, phase)| matches!(phase.get(), Phase::Parked(_)))
            .count()
    }

    /// Wakes the parked connections whose keep-alive ended by `now`, marked so they close.
    pub fn expire_parked(&self, now: Instant) {
        for (fd, phase) in self.conns.borrow().slots.iter().flatten() {
            if let Phase::Parked(deadline) = phase.get()
                && deadline <= now
            {
                phase.set(Phase::Expired);
                crate::sys::shutdown_read(*fd);
            }
        }
    }

    /// Drops the cached responses `what` names from this shard's caches; how many.
    pub fn purge(&self, what: &crate::control::Purge) -> u64 {
        self.gateway().purge(what)
    }

    /// A copy of the counters.
    pub fn counters(&self) -> ShardCounters {
        let s = &self.stats;
        let gw = self.gateway();
        let (mut refusals, mut stage_figures) = (Vec::new(), Vec::new());
        for r in &gw.routes {
            for (reason, n) in r.pipeline.refusals() {
                refusals.push((r.name.clone(), reason, n));
            }
            for (kind, f) in r.pipeline.figures() {
                stage_figures.push((r.name.clone(), kind, f));
            }
        }
        for (kind, f) in gw.global_figures() {
            // global stages belong to no route
            stage_figures.push((String::new(), kind, f));
        }
        ShardCounters {
            shard: self.id,
            accepted: s.accepted.get(),
            over_limit: s.over_limit.get(),
            h2: [
                s.h2_connections.get(),
                s.h2_refused.get(),
                s.h2_floods.get(),
            ],
            open: self.open_connections() as u64,
            parked: self.parked_connections() as u64,
            requests: s.requests.get(),
            finished: s.finished.get(),
            outcomes: s.outcomes.each_ref().map(Cell::get),
            classes: s.classes.each_ref().map(Cell::get),
            refusals,
            stage_figures,
            tls_handshakes: s.tls_handshakes.each_ref().map(Cell::get),
            tls_failures: crate::tls::handshake::Failure::ALL
                .iter()
                .zip(&s.tls_failures)
                .map(|(f, c)| (f.as_str(), c.get()))
                .filter(|(_, n)| *n > 0)
                .collect(),
            targets: targets(&gw),
            retries: s.retries.get(),
            tunnels: s.tunnels.get(),
            routes: std::iter::once(gw.unrouted_stats.snapshot(""))
                .chain(gw.routes.iter().map(|r| r.stats.snapshot(&r.name)))
                .collect(),
            listeners: self
                .listening
                .borrow()
                .iter()
                .map(|l| {
                    let scheme = gw.listener(l.id).map_or("http", |r| r.scheme());
                    (l.bound, scheme, l.accepted.get())
                })
                .collect(),
            log_lines: [
                self.log.lines.get(),
                self.log.dropped.get(),
                self.log.lost.load(std::sync::atomic::Ordering::Relaxed),
            ],
        }
    }
}
