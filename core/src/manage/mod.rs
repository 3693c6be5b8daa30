//! Management (`[management]`): the catalogue of tenants, APIs, plans, consumers and
//! subscriptions. One thread owns the store and the catalogue in memory; the admin listener
//! hands it each management request (`Call`) and it answers. A change is written to the
//! store with its audit entry in one transaction, then applied in memory, then sent to every
//! shard (`Message::Catalogue`), and the answer waits until each shard has it: once an
//! approval or a revocation is answered, every shard acts on it. No shard touches the store.
//!
//! Every `flush` the thread also asks each shard for the call figures it counted
//! (`Message::Calls`), adds them to the store, and rolls old ones up; a store that fails
//! keeps them waiting here (bounded; past it they are dropped and counted), and no shard
//! ever waits for it.

pub mod analytics;
mod api;
mod entries;
pub mod pg;
mod report;
pub mod sql;
pub mod sqlite;
pub mod store;
mod subscriptions;
mod trends;

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use policy::catalogue::Catalogue;

use crate::control::{Control, Message};
use store::{AuditEntry, Op, Store};

pub use api::{Call, Reply};

/// How long a shard may take to take a new catalogue before the answer goes without it.
const SHARD_WAIT: Duration = Duration::from_secs(2);

/// Most call rows kept here while the store cannot take them.
const MAX_PENDING: usize = 200_000;

/// Milliseconds since the Unix epoch, now (the management thread stamps changes with it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Opens the store `[management]` names (relative to `dir`) and loads the catalogue: done
/// before the shards start, so each starts with it.
pub fn open(
    conf: &conf::management::ManagementConf,
    dir: &std::path::Path,
) -> Result<(Box<dyn Store>, Catalogue), String> {
    let opened: Result<Box<dyn Store>, store::StoreError> = match &conf.postgres {
        Some(conninfo) => {
            let password = match &conf.password_file {
                None => None,
                Some(f) => {
                    let p = dir.join(f.get_ref());
                    let text = std::fs::read_to_string(&p)
                        .map_err(|e| format!("[management] password_file {}: {e}", p.display()))?;
                    Some(text.trim_end_matches(['\r', '\n']).to_string())
                }
            };
            pg::open(conninfo.get_ref(), password.as_deref()).map(|s| Box::new(s) as Box<dyn Store>)
        }
        None => sqlite::open(&dir.join(conf.path.get_ref())).map(|s| Box::new(s) as Box<dyn Store>),
    };
    let mut store = opened.map_err(|e| format!("[management]: {e}"))?;
    let catalogue = store.load().map_err(|e| format!("[management]: {e}"))?;
    Ok((store, catalogue))
}

/// The management thread's state.
struct Manager {
    store: Box<dyn Store>,
    catalogue: Catalogue,
    control: Weak<Control>,
    /// How often call figures are collected.
    flush: Duration,
    /// How long each period's rows are kept.
    retention: analytics::Retention,
    /// Call rows the store has not taken yet.
    pending: Vec<analytics::Stored>,
    /// Exchanges not counted (shards' bound, this thread's), since the start.
    dropped: u64,
    /// The store failed at the last write (logged once per failure run).
    failing: bool,
    /// When the store's version was last compared with ours.
    refreshed: Instant,
}

/// Least time between two looks at the store's version on behalf of admin requests.
const REFRESH_EVERY: Duration = Duration::from_millis(250);

fn ms(d: conf::Duration) -> u64 {
    u64::try_from(d.0.as_millis()).unwrap_or(u64::MAX)
}

/// Starts the management thread; the sender the admin listener hands calls to. It stops
/// when every sender is gone.
pub fn start(
    conf: &conf::management::ManagementConf,
    store: Box<dyn Store>,
    catalogue: Catalogue,
    control: Weak<Control>,
) -> std::io::Result<Sender<(Call, Sender<Reply>)>> {
    let (tx, rx) = mpsc::channel();
    let mut m = Manager {
        store,
        catalogue,
        control,
        flush: conf.flush.0,
        retention: analytics::Retention {
            minutes_ms: ms(conf.keep_minutes),
            hours_ms: ms(conf.keep_hours),
            days_ms: ms(conf.keep_days),
        },
        pending: Vec::new(),
        dropped: 0,
        failing: false,
        refreshed: Instant::now(),
    };
    std::thread::Builder::new()
        .name("sg-manage".into())
        .spawn(move || serve(&mut m, &rx))?;
    Ok(tx)
}

/// Answers calls, and collects figures every `flush`, until the shards are gone.
fn serve(m: &mut Manager, rx: &Receiver<(Call, Sender<Reply>)>) {
    let mut next = Instant::now() + m.flush;
    loop {
        match rx.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Ok((call, reply)) => {
                let _ = reply.send(m.call(call));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // no admin listener: figures are still collected
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        }
        if Instant::now() >= next {
            if m.control.strong_count() == 0 {
                return;
            }
            m.refresh();
            m.collect();
            next = Instant::now() + m.flush;
        }
    }
}

impl Manager {
    /// Reloads the catalogue when the store's version moved on (another node sharing the
    /// store changed it), and sends it to every shard.
    fn refresh(&mut self) {
        self.refreshed = Instant::now();
        match self.store.version() {
            Ok(v) if v == self.catalogue.version => {}
            Ok(_) => match self.store.load() {
                Ok(c) => {
                    crate::log!(
                        Info,
                        "management: catalogue version {} from the store",
                        c.version
                    );
                    self.catalogue = c;
                    self.publish();
                }
                Err(e) => crate::log!(Warn, "management: cannot reload the catalogue: {e}"),
            },
            Err(_) => {}
        }
    }

    /// Takes the shards' call figures, writes what waits (rolling old rows up), and keeps
    /// what the store would not take.
    fn collect(&mut self) {
        let Some(control) = self.control.upgrade() else {
            return;
        };
        let replies = control.gather(Message::Calls, SHARD_WAIT);
        let mut rows = Vec::new();
        for (r, dropped) in replies {
            rows.extend(r);
            self.dropped += dropped;
        }
        self.pending
            .extend(analytics::resolve(&self.catalogue, rows));
        if self.pending.len() > MAX_PENDING {
            let over = self.pending.len() - MAX_PENDING;
            let lost: u64 = self.pending.drain(..over).map(|r| r.sums.count).sum();
            self.dropped += lost;
        }
        match self.store.add_calls(&self.pending) {
            Ok(()) => {
                // written: never again, whatever the roll-up does
                self.pending.clear();
                if std::mem::take(&mut self.failing) {
                    crate::log!(Info, "management: the store takes call figures again");
                }
            }
            Err(e) if !self.failing => {
                self.failing = true;
                crate::log!(
                    Warn,
                    "management: cannot write call figures ({e}); {} rows wait for the store",
                    self.pending.len()
                );
            }
            Err(_) => {}
        }
        if !self.failing
            && let Err(e) = analytics::roll_up(&mut *self.store, now_ms(), &self.retention)
        {
            crate::log!(
                Warn,
                "management: cannot roll call figures up ({e}); next time"
            );
        }
    }

    /// Writes one change: to the store (with `audit`), then in memory, then to every
    /// shard; the catalogue's new version and how many shards have it, or the store's
    /// failure (nothing changed then).
    fn change(&mut self, ops: &[Op], mut audit: AuditEntry) -> Result<(u64, usize, usize), String> {
        audit.id = self.catalogue.version + 1;
        audit.at_ms = now_ms();
        if let Err(e) = self.store.commit(ops, &audit) {
            // another node may have changed the catalogue first: take its version
            self.refresh();
            return Err(format!("the store failed, nothing changed: {e}"));
        }
        for op in ops {
            store::apply(&mut self.catalogue, op);
        }
        self.catalogue.version = audit.id;
        let (have, of) = self.publish();
        Ok((audit.id, have, of))
    }

    /// Sends the catalogue to every shard and waits (a while) until each has it; how many
    /// said so, of how many (one that did not in time takes it from its inbox later).
    fn publish(&self) -> (usize, usize) {
        let Some(control) = self.control.upgrade() else {
            return (0, 0);
        };
        let c = Arc::new(self.catalogue.clone());
        let have = control.gather(|tx| Message::Catalogue(c.clone(), Some(tx)), SHARD_WAIT);
        (have.len(), control.shards())
    }
}
