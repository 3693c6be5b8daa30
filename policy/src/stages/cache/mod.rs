//! The `cache` stage: a shared HTTP cache (RFC 9111) per shard and route. A fresh stored
//! response is answered here (`Age`, `Cache-Status`, a `304` for a matching conditional
//! request); a stale one is revalidated with the origin (its `304` freshens the entry and the
//! client gets the stored body), or served while the origin fails when `stale-if-error`
//! allows; a miss goes upstream and the body is stored as it streams to the client. GET
//! responses are stored, HEAD is answered from them; a successful unsafe request (POST, PUT,
//! DELETE, PATCH) invalidates its URL. With `shared = true` each key is stored on one shard
//! (`shared`). The rules themselves live in `crate::cache`.
//!
//! ```toml
//! [[route.policy]]
//! kind = "cache"
//! size = "64MiB"
//! max_object = "8MiB"
//! ```

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proto::{Method, RequestHead, ResponseHead};
mod coalesce;
pub mod config;
mod reuse;
mod shared;

use crate::cache::Purge;
use crate::cache::directives::RequestDirectives;
use crate::cache::entry::{self, Entry, values};
use crate::cache::freshness::{RequestFacts, ResponseFacts};
use crate::cache::key::KeySpec;
use crate::cache::status::{CacheStatus, Forward};
use crate::cache::table::{Fill, Found, Table, bump};
use crate::exchange::{Exchange, Outcome};
use crate::gate::Gate;
use crate::stage::{
    BodyTap, Fetched, Figure, Piece, Rejection, Stage, StageBuild, StageContext, Verdict,
};
use coalesce::Flight;
use config::Compiled;
pub use config::Config;
use reuse::status_fields;
use shared::Share;

/// What the stage keeps of an exchange that went upstream, until it finishes (or of a
/// background refresh, until its answer arrives).
#[derive(Default)]
struct Pending {
    primary: Vec<u8>,
    url: Vec<u8>,
    /// The request was unsafe: a success invalidates the URL.
    invalidate: bool,
    request: RequestFacts,
    request_time: u64,
    /// The request's fields (lowercased names), for `Vary`.
    fields: Vec<(Vec<u8>, Vec<u8>)>,
    fwd: Forward,
    /// The stale entry being revalidated.
    stale: Option<Rc<Entry>>,
    /// The client's own `If-None-Match` and `If-Modified-Since` (parsed).
    if_none_match: Option<Vec<u8>>,
    if_modified_since: Option<u64>,
    /// `ex.fallback` holds the stale copy for an upstream failure.
    armed: bool,
    /// The gate concurrent misses for this URL wait on (this exchange is the first).
    gate: Option<Rc<Gate>>,
    /// Another shard owns the key (`shared`), found once per request.
    remote: bool,
    /// Another shard owns the key and its misses wait for this exchange (this flight of
    /// the owner's): it reports the end (what it stored, or that it stored nothing).
    filler: Option<u64>,
    fill: Option<Fill>,
}

/// The stage.
pub struct Cache {
    spec: KeySpec,
    max_object: u64,
    ttl: Option<u32>,
    store_set_cookie: bool,
    /// Boxed: the store's tables would make every stage variant as large.
    table: Box<Table>,
    pending: RefCell<ahash::AHashMap<u64, Pending>>,
    /// How long a coalesced miss waits (`None`: misses are not coalesced).
    coalesce: Option<Duration>,
    /// The misses on their way upstream, by primary key, and the last flight's number.
    inflight: RefCell<ahash::AHashMap<Vec<u8>, Flight>>,
    flights: std::cell::Cell<u64>,
    /// Background refreshes out, by token.
    refreshing: RefCell<ahash::AHashMap<u64, Pending>>,
    /// One copy per gateway (`shared = true`): who owns which key, and the lookups out.
    share: Option<Box<Share>>,
}

impl StageBuild for Cache {
    const KIND: &'static str = "cache";
    type Config = Config;

    fn build(c: Config, ctx: &StageContext<'_>) -> Result<Self, String> {
        let Compiled {
            spec,
            ttl,
            eviction,
        } = c.compile()?;
        let share =
            (c.shared && ctx.shards > 1).then(|| Box::new(Share::new(ctx, c.coalesce_wait.0)));
        Ok(Cache {
            spec,
            max_object: c.max_object.0,
            ttl,
            store_set_cookie: c.store_set_cookie,
            table: Box::new(Table::new(eviction, c.size.0)),
            pending: RefCell::default(),
            coalesce: c.coalesce.then_some(c.coalesce_wait.0),
            inflight: RefCell::default(),
            flights: std::cell::Cell::new(0),
            refreshing: RefCell::default(),
            share,
        })
    }
}

/// Methods whose success invalidates what is stored for their URL (RFC 9111 §4.4).
fn unsafe_method(m: Method) -> bool {
    matches!(
        m,
        Method::Post | Method::Put | Method::Delete | Method::Patch
    )
}

impl Cache {
    /// What the stage keeps of a request it may store the answer to, or that invalidates.
    fn pending_for(&self, head: &RequestHead, buf: &[u8], now: u64) -> Pending {
        let field = |n: &[u8]| head.value_of(buf, n);
        let host = head.authority(buf).unwrap_or_default();
        let pragma =
            values(&head.fields, buf, b"pragma").any(|v| v.eq_ignore_ascii_case(b"no-cache"));
        Pending {
            primary: self.spec.key(host, head.path(buf), field),
            invalidate: unsafe_method(head.method),
            request: RequestFacts {
                get: head.method == Method::Get,
                authorization: field(b"authorization").is_some(),
                cc: RequestDirectives::parse(values(&head.fields, buf, b"cache-control"), pragma),
            },
            request_time: now,
            ..Pending::default()
        }
    }

    /// Starts storing a storable response (under its variant's key when it has `Vary`).
    fn fill_for(head: &ResponseHead, buf: &[u8], facts: ResponseFacts) -> Fill {
        Fill {
            vary: values(&head.fields, buf, b"vary")
                .flat_map(|v| v.split(|&c| c == b','))
                .map(<[u8]>::trim_ascii)
                .filter(|n| !n.is_empty())
                .map(<[u8]>::to_ascii_lowercase)
                .collect(),
            facts,
            fields: entry::stored_fields(head, buf),
            body: Vec::new(),
        }
    }

    /// Starts an exchange that goes upstream: what of the request its response needs is
    /// copied now (a hit never pays for it).
    fn pend(&self, ex: &Exchange, mut p: Pending, head: &RequestHead, buf: &[u8]) {
        if !p.invalidate {
            remember(&mut p, head, buf);
            bump(&self.table.counts.misses, 1);
        }
        self.pending.borrow_mut().insert(ex.serial, p);
    }

    /// What is stored for this request: in the table, or (a key another shard owns) what
    /// the owner answered; `Err` when the exchange must wait for that answer first.
    fn find(
        &self,
        p: &mut Pending,
        head: &RequestHead,
        buf: &[u8],
        ex: &Exchange,
    ) -> Result<Found, Verdict<'_>> {
        match self.share.as_deref() {
            Some(share) if share.owner(&p.primary) != share.shard => {
                p.remote = true;
                self.ask(share, p, head, buf, ex)
            }
            _ => Ok(self.table.find(&p.primary, |n| head.value_of(buf, n))),
        }
    }
}

/// Copies into `p` what storing or revalidating the response needs of the request: its URL
/// (for purges), its fields (a GET's, for `Vary`) and its conditionals.
fn remember(p: &mut Pending, head: &RequestHead, buf: &[u8]) {
    let field = |n: &[u8]| head.value_of(buf, n);
    p.url = url_of(head, buf);
    if p.request.get {
        p.fields = head
            .fields
            .iter()
            .map(|f| {
                (
                    f.name.get(buf).to_ascii_lowercase(),
                    f.value.get(buf).to_vec(),
                )
            })
            .collect();
    }
    p.if_none_match = field(b"if-none-match").map(<[u8]>::to_vec);
    p.if_modified_since =
        field(b"if-modified-since").and_then(|v| proto::date::parse_http_date(v, p.request_time));
}

/// The request's URL as purges name it: `host\npath?query`.
fn url_of(head: &RequestHead, buf: &[u8]) -> Vec<u8> {
    let host = head.authority(buf).unwrap_or_default();
    let mut u = Vec::with_capacity(host.len() + head.path.len as usize + 1);
    u.extend(host.iter().map(u8::to_ascii_lowercase));
    u.push(b'\n');
    u.extend_from_slice(head.path(buf));
    u
}

impl Stage for Cache {
    fn on_request(&self, head: &RequestHead, buf: &[u8], ex: &mut Exchange) -> Verdict<'_> {
        let get = head.method == Method::Get;
        if !(get || head.method == Method::Head || unsafe_method(head.method)) {
            return Verdict::Continue;
        }
        let mut p = self.pending_for(head, buf, ex.unix_secs());
        if p.invalidate {
            self.pend(ex, p, head, buf);
            return Verdict::Continue;
        }
        let found = match self.find(&mut p, head, buf, ex) {
            Ok(f) => f,
            Err(wait) => return wait,
        };
        if matches!(found, Found::VaryMiss) {
            p.fwd = Forward::VaryMiss;
        }
        match found {
            Found::Entry(e) => {
                if let Some(v) = self.use_stored(e, &mut p, head, buf, ex) {
                    return v;
                }
            }
            // a key another shard owns was coalesced there
            _ if p.remote => {}
            Found::UriMiss | Found::VaryMiss if !p.request.cc.only_if_cached => {
                if let Some(wait) = self.coalesce(&mut p, ex) {
                    return wait;
                }
            }
            Found::UriMiss | Found::VaryMiss => {}
        }
        if p.request.cc.only_if_cached {
            return Verdict::Reject(Rejection::new(
                504,
                "cache.only_if_cached",
                "only-if-cached, and no stored response can be used",
            ));
        }
        self.pend(ex, p, head, buf);
        Verdict::Continue
    }

    fn on_response(&self, head: &ResponseHead, buf: &[u8], ex: &mut Exchange) {
        let mut pending = self.pending.borrow_mut();
        let Some(p) = pending.get_mut(&ex.serial) else {
            return;
        };
        let fallback = ex.fallback.take();
        p.armed = false;
        if p.invalidate {
            if (200..400).contains(&head.status) {
                self.forget(&p.primary);
            }
            return;
        }
        let now = ex.unix_secs();
        let mut facts = entry::facts(head, buf, p.request_time, now);
        if let Some(ttl) = self.ttl {
            entry::override_lifetime(&mut facts, ttl);
        }
        if self.after_stale(p, head, buf, ex, facts, fallback) {
            return;
        }
        let storable = match facts.storable(&p.request, self.store_set_cookie) {
            Ok(()) if head.status == 304 => Err("status"),
            Ok(()) if head.content_length.is_some_and(|n| n > self.max_object) => Err("too-large"),
            Ok(()) => Ok(()),
            Err(why) => Err(why.as_str()),
        };
        if storable.is_ok() {
            let fill = Cache::fill_for(head, buf, facts);
            if head.status == 204 || head.content_length == Some(0) {
                // no body to wait for: stored before the client has the head
                self.keep(fill, p);
            } else {
                p.fill = Some(fill);
            }
        }
        let status = CacheStatus::Forwarded {
            fwd: p.fwd,
            status: p.stale.is_some().then_some(head.status),
            stored: storable.is_ok(),
            detail: storable.err(),
        };
        status_fields(&mut ex.response.add, None, &status);
    }

    fn response_body(&self, _head: &ResponseHead, _buf: &[u8], ex: &Exchange) -> Option<BodyTap> {
        let mut pending = self.pending.borrow_mut();
        let p = pending.get_mut(&ex.serial)?;
        p.fill.as_ref()?;
        if ex.taps.iter().any(|t| t.rewrite) {
            // a stage after it in response order rewrites the body (compression): what it
            // would see is not the response it has the head of
            p.fill = None;
            return None;
        }
        Some(BodyTap::Observe {
            limit: self.max_object,
        })
    }

    fn on_response_body(&self, piece: Piece<'_>, ex: &mut Exchange, _out: &mut Vec<u8>) {
        let mut pending = self.pending.borrow_mut();
        let Some(p) = pending.get_mut(&ex.serial) else {
            return;
        };
        match piece {
            Piece::Data(d) => {
                if let Some(f) = &mut p.fill {
                    f.body.extend_from_slice(d);
                }
            }
            Piece::TooLarge => p.fill = None,
            Piece::End => {
                if let Some(f) = p.fill.take() {
                    self.keep(f, p);
                }
            }
        }
    }

    fn on_finish(&self, ex: &Exchange) {
        if let Some(share) = self.share.as_deref() {
            share.forget_ask(ex.serial);
        }
        let Some(mut p) = self.pending.borrow_mut().remove(&ex.serial) else {
            return;
        };
        if p.armed && ex.fallback.is_none() {
            // the gateway answered the upstream's failure with the stale copy
            bump(&self.table.counts.stale_served, 1);
        }
        if let Some(f) = p.fill.take()
            && ex.outcome == Outcome::Forwarded
        {
            // a bodyless response (204) passes no body tap, so no `End` stored it
            self.keep(f, &mut p);
        }
        if let Some(flight) = p.filler.take() {
            // nothing stored: the owner's waiters go upstream themselves
            self.done(&p.primary, flight);
        }
        // what it fetched is stored (or not storable): the waiters look again
        self.release(&mut p);
    }

    fn on_refresh(&self, token: u64, answer: Option<Fetched<'_>>, wall: u64) {
        let Some(mut p) = self.refreshing.borrow_mut().remove(&token) else {
            return;
        };
        let (Some(a), Some(stale)) = (answer, p.stale.take()) else {
            return;
        };
        let mut facts = entry::facts(a.head, a.buf, p.request_time, wall);
        if let Some(ttl) = self.ttl {
            entry::override_lifetime(&mut facts, ttl);
        }
        if a.head.status == 304 {
            self.keep_fresh(&p.primary, Rc::new(stale.freshened(a.head, a.buf, facts)));
            bump(&self.table.counts.revalidated, 1);
            return;
        }
        let fits = a.body.len() as u64 <= self.max_object;
        if fits && facts.storable(&p.request, self.store_set_cookie).is_ok() {
            let mut f = Cache::fill_for(a.head, a.buf, facts);
            f.body = a.body.to_vec();
            self.keep(f, &mut p);
        }
    }

    fn on_letter(&self, from: usize, body: Box<dyn std::any::Any + Send>, wall: u64) {
        self.letter(from, body, wall);
    }

    fn figures(&self) -> Vec<Figure> {
        let mut all = self.table.figures();
        if let Some(share) = self.share.as_deref() {
            all.extend(share.figures());
        }
        all
    }

    fn purge(&self, what: &Purge) -> u64 {
        self.table.purge(what)
    }
}
