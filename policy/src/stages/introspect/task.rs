//! The shard's introspection client for one stage: tokens not yet known wait in a queue
//! (each once, however many requests carry it), the shard's task runner posts them to the
//! authorization server one at a time, and each answer goes into the cache and opens the
//! gate its requests wait on.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ahash::AHashMap;

use super::answer::{ConsumerField, Entry, form, parse};
use crate::gate::Gate;
use crate::lru::Lru;
use crate::task::{Job, Next, Task, Wake};

/// Most tokens waiting for introspection on one shard; beyond, requests get 503.
pub const MAX_PENDING: usize = 1024;

/// Largest answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// How long a failed introspection refuses its token (then it is tried again).
const FAILED_FOR: Duration = Duration::from_secs(1);

/// A token's SHA-256.
pub type Digest = [u8; 32];

/// The cache key of a digest (its first 8 bytes; the entry keeps the whole digest).
pub fn key(d: &Digest) -> u64 {
    let mut k = [0u8; 8];
    for (a, b) in k.iter_mut().zip(d) {
        *a = *b;
    }
    u64::from_le_bytes(k)
}

/// Where the endpoint is.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Its address.
    pub addr: SocketAddr,
    /// Host field value.
    pub host: Rc<str>,
    /// Its path.
    pub path: Rc<str>,
    /// `https`, verified against this bundle (or the web roots).
    pub tls: Option<Option<Rc<PathBuf>>>,
}

/// State the stage and its task share on one shard.
pub struct Shared {
    /// Answers by token.
    pub cache: RefCell<Lru<(Digest, Entry)>>,
    /// Tokens waiting, with the gate their requests wait on.
    pending: RefCell<VecDeque<(String, Digest, Rc<Gate>)>>,
    /// Gates of tokens waiting or being introspected.
    pub waiting: RefCell<AHashMap<Digest, Rc<Gate>>>,
    /// The token being introspected now.
    current: RefCell<Option<(Digest, Rc<Gate>)>>,
    /// Introspections made, answers failed.
    pub asked: Cell<u64>,
    /// See `asked`.
    pub failed: Cell<u64>,
    wake: Wake,
}

impl Shared {
    /// Empty, with room for `cache` answers.
    pub fn new(cache: usize) -> Shared {
        Shared {
            cache: RefCell::new(Lru::new(cache.max(1))),
            pending: RefCell::default(),
            waiting: RefCell::default(),
            current: RefCell::default(),
            asked: Cell::new(0),
            failed: Cell::new(0),
            wake: Wake::default(),
        }
    }

    /// The gate for `token`'s answer: the one it already waits on, or a new one with the
    /// token queued; `None` when the queue is full.
    pub fn ask(&self, token: &str, digest: Digest, limit: Duration) -> Option<Rc<Gate>> {
        if let Some(g) = self.waiting.borrow().get(&digest) {
            return Some(g.clone());
        }
        let mut pending = self.pending.borrow_mut();
        if pending.len() >= MAX_PENDING {
            return None;
        }
        let gate = Rc::new(Gate::new(limit));
        pending.push_back((token.to_string(), digest, gate.clone()));
        self.waiting.borrow_mut().insert(digest, gate.clone());
        self.wake.raise();
        Some(gate)
    }

    /// The answer held for `digest`, if any.
    pub fn get(&self, digest: &Digest) -> Option<Entry> {
        let mut cache = self.cache.borrow_mut();
        let (d, e) = cache.get(key(digest))?;
        (d == digest).then(|| e.clone())
    }
}

/// The task: one introspection at a time.
pub struct Introspector {
    /// The shared state.
    pub shared: Rc<Shared>,
    /// Where to ask.
    pub endpoint: Endpoint,
    /// The client's credentials and the body's type, as field lines.
    pub fields: Rc<[u8]>,
    /// Which answer field is the consumer.
    pub field: ConsumerField,
    /// Audiences a token must be for (empty: any).
    pub audience: Vec<String>,
    /// How long an inactive answer is kept.
    pub negative_ttl: Duration,
    /// Time allowed for one introspection.
    pub timeout: Duration,
}

impl Task for Introspector {
    fn describe(&self) -> String {
        let scheme = if self.endpoint.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!(
            "introspection {scheme}://{}{}",
            self.endpoint.host, self.endpoint.path
        )
    }

    fn next(&self, _now: Instant) -> Next {
        let Some((token, digest, gate)) = self.shared.pending.borrow_mut().pop_front() else {
            return Next::Sleep(None);
        };
        *self.shared.current.borrow_mut() = Some((digest, gate));
        self.shared.asked.set(self.shared.asked.get() + 1);
        let e = &self.endpoint;
        Next::Run(Job::HttpPost {
            addr: e.addr,
            host: e.host.clone(),
            tls: e.tls.is_some(),
            ca: e.tls.clone().flatten(),
            path: e.path.clone(),
            fields: self.fields.clone(),
            body: format!("token={}&token_type_hint=access_token", form(&token)).into_bytes(),
            max_bytes: MAX_ANSWER,
            timeout: self.timeout,
        })
    }

    fn done(&self, result: Result<Vec<u8>, String>, now: Instant) -> Result<String, String> {
        let Some((digest, gate)) = self.shared.current.borrow_mut().take() else {
            return Ok(String::new());
        };
        let parsed = result.and_then(|body| parse(&body, self.field, &self.audience));
        let (entry, outcome) = match parsed {
            Ok(Some((identity, exp))) => {
                let identity = Rc::new(identity);
                (
                    Entry::Active {
                        identity,
                        exp,
                        at: now,
                    },
                    Ok(String::new()),
                )
            }
            Ok(None) => {
                let until = now + self.negative_ttl;
                (Entry::Inactive { until }, Ok(String::new()))
            }
            Err(e) => {
                self.shared.failed.set(self.shared.failed.get() + 1);
                (
                    Entry::Failed {
                        until: now + FAILED_FOR,
                    },
                    Err(e),
                )
            }
        };
        self.shared
            .cache
            .borrow_mut()
            .insert(key(&digest), (digest, entry));
        self.shared.waiting.borrow_mut().remove(&digest);
        gate.open();
        outcome
    }

    fn wake(&self) -> &Wake {
        &self.shared.wake
    }
}
