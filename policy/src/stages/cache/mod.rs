//! The `cache` stage: a shared HTTP cache (RFC 9111) per shard and route. A fresh stored
//! response is answered here (`Age`, `Cache-Status`, a `304` for a matching conditional
//! request); a stale one is revalidated with the origin (its `304` freshens the entry and the
//! client gets the stored body), or served while the origin fails when `stale-if-error`
//! allows; a miss goes upstream and the body is stored as it streams to the client. GET
//! responses are stored, HEAD is answered from them; a successful unsafe request (POST, PUT,
//! DELETE, PATCH) invalidates its URL. The rules themselves live in `crate::cache`.
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
pub mod config;

use crate::cache::Purge;
use crate::cache::conditional::{self, Conditional};
use crate::cache::directives::RequestDirectives;
use crate::cache::entry::{self, Entry, values};
use crate::cache::freshness::{RequestFacts, ResponseFacts, Reuse};
use crate::cache::key::KeySpec;
use crate::cache::status::{CacheStatus, Forward, put_cache_status};
use crate::cache::table::{Fill, Found, Table, bump, variant_key};
use crate::exchange::{Exchange, Outcome, Refresh, Replacement};
use crate::gate::Gate;
use crate::reply::LocalReply;
use crate::stage::{
    BodyTap, Fetched, Figure, Piece, Rejection, Stage, StageBuild, StageContext, Verdict,
};
use config::Compiled;
pub use config::Config;

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
    /// The misses on their way upstream, by primary key, with the gate their waiters wait on.
    inflight: RefCell<ahash::AHashMap<Vec<u8>, Rc<Gate>>>,
    /// Background refreshes out, by token.
    refreshing: RefCell<ahash::AHashMap<u64, Pending>>,
}

impl StageBuild for Cache {
    const KIND: &'static str = "cache";
    type Config = Config;

    fn build(c: Config, _ctx: &StageContext<'_>) -> Result<Self, String> {
        let Compiled {
            spec,
            ttl,
            eviction,
        } = c.compile()?;
        Ok(Cache {
            spec,
            max_object: c.max_object.0,
            ttl,
            store_set_cookie: c.store_set_cookie,
            table: Box::new(Table::new(eviction, c.size.0)),
            pending: RefCell::default(),
            coalesce: c.coalesce.then_some(c.coalesce_wait.0),
            inflight: RefCell::default(),
            refreshing: RefCell::default(),
        })
    }
}

/// Request fields a background refresh does not send: the client's conditionals and cache
/// directives were for its own request.
const REFRESH_DROPS: [&[u8]; 6] = [
    b"if-none-match",
    b"if-modified-since",
    b"if-match",
    b"if-range",
    b"cache-control",
    b"pragma",
];

/// Methods whose success invalidates what is stored for their URL (RFC 9111 §4.4).
fn unsafe_method(m: Method) -> bool {
    matches!(
        m,
        Method::Post | Method::Put | Method::Delete | Method::Patch
    )
}

/// Appends `Age` and `Cache-Status` field lines.
fn status_fields(out: &mut Vec<u8>, age: Option<u64>, status: &CacheStatus) {
    if let Some(age) = age {
        out.extend_from_slice(b"Age: ");
        proto::write::put_decimal(out, age);
        out.extend_from_slice(b"\r\n");
    }
    put_cache_status(out, status);
}

/// The reply to a request whose conditionals are `inm` / `ims`, from `e`: a `304` when they
/// match, else the stored response.
fn answer_from(e: &Entry, inm: Option<&[u8]>, ims: Option<u64>) -> Rc<LocalReply> {
    let etag = e.field(b"etag").and_then(conditional::etag);
    match conditional::evaluate(inm, ims, etag, e.facts.last_modified) {
        Conditional::NotModified => Rc::new(e.not_modified()),
        Conditional::Full => e.reply.clone(),
    }
}

impl Cache {
    /// A GET miss: the first for its URL goes upstream holding a gate; later ones wait on it
    /// (once), then find what it stored.
    fn coalesce(&self, p: &mut Pending, ex: &Exchange) -> Option<Verdict<'_>> {
        let wait = self.coalesce.filter(|_| p.request.get)?;
        let mut inflight = self.inflight.borrow_mut();
        match inflight.get(&p.primary).filter(|g| !g.is_open()) {
            Some(g) if !ex.waited => {
                bump(&self.table.counts.coalesced, 1);
                Some(Verdict::Wait(g.clone()))
            }
            Some(_) => None,
            None => {
                let g = Rc::new(Gate::new(wait));
                inflight.insert(p.primary.clone(), g.clone());
                p.gate = Some(g);
                None
            }
        }
    }

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

    /// A stored response for this request: served (`Some`), or revalidated on the way
    /// upstream (`None`; the stale copy held for an origin failure when it allows that).
    fn use_stored(
        &self,
        e: Rc<Entry>,
        p: &mut Pending,
        head: &RequestHead,
        buf: &[u8],
        ex: &mut Exchange,
    ) -> Option<Verdict<'_>> {
        let (cc, now) = (&e.facts.cc, ex.unix_secs());
        if p.request.authorization && !(cc.public || cc.must_revalidate || cc.s_maxage.present()) {
            // stored for requests without credentials (RFC 9111 §3.5)
            p.fwd = Forward::Bypass;
            return None;
        }
        let stale =
            -i64::try_from(e.facts.age(now).saturating_sub(e.facts.lifetime())).unwrap_or(i64::MAX);
        let reuse = e.facts.reuse(&p.request.cc, now);
        let forced = p.request.cc.no_cache || p.request.cc.max_age.get() == Some(0);
        if matches!(reuse, Reuse::StaleIfError { .. } | Reuse::Revalidate)
            && !forced
            && !e.facts.cc.no_cache
            && let Some(wait) = self.coalesce(p, ex)
        {
            // one revalidation of a stale entry at a time; the others get what it brings
            return Some(wait);
        }
        match reuse {
            Reuse::Fresh { ttl } => {
                let ttl = i64::try_from(ttl).unwrap_or(i64::MAX);
                return Some(self.serve(&e, head, buf, ex, ttl));
            }
            Reuse::Stale { revalidate } => {
                if revalidate {
                    self.ask_refresh(&e, std::mem::take(p), head, buf, ex);
                }
                return Some(self.serve(&e, head, buf, ex, stale));
            }
            Reuse::StaleIfError { allowed } => {
                if allowed {
                    let mut fields = Vec::new();
                    let status = CacheStatus::Hit { ttl: stale };
                    status_fields(&mut fields, Some(e.facts.age(now)), &status);
                    let reply = e.reply.clone();
                    ex.fallback = Some(Replacement { reply, fields });
                    p.armed = true;
                }
                p.fwd = Forward::Stale;
            }
            Reuse::Revalidate => {
                p.fwd = if forced {
                    Forward::Request
                } else {
                    Forward::Stale
                };
            }
        }
        // revalidate with the stored validators, not the client's
        let edits = &mut ex.edits.fields;
        edits.drop_named(&head.fields, buf, b"if-none-match");
        edits.drop_named(&head.fields, buf, b"if-modified-since");
        let mut add = std::mem::take(&mut edits.add);
        conditional::revalidation_fields(&mut add, e.field(b"etag"), e.field(b"last-modified"));
        edits.add = add;
        p.stale = Some(e);
        None
    }

    /// The origin answered a revalidation: a `304` freshens the entry and the client gets
    /// it, a `5xx` gets the stale copy when it allows that. True when the stage answered.
    fn after_stale(
        &self,
        p: &Pending,
        head: &ResponseHead,
        buf: &[u8],
        ex: &mut Exchange,
        facts: ResponseFacts,
        fallback: Option<Replacement>,
    ) -> bool {
        let Some(stale) = &p.stale else {
            return false;
        };
        if head.status == 304 {
            let now = ex.unix_secs();
            let fresh = Rc::new(stale.freshened(head, buf, facts));
            self.table.replace(fresh.clone());
            let reply = answer_from(&fresh, p.if_none_match.as_deref(), p.if_modified_since);
            let mut fields = Vec::new();
            let status = CacheStatus::Forwarded {
                fwd: p.fwd,
                status: Some(304),
                stored: true,
                detail: None,
            };
            status_fields(&mut fields, Some(fresh.facts.age(now)), &status);
            ex.substitute = Some(Replacement { reply, fields });
            bump(&self.table.counts.revalidated, 1);
            return true;
        }
        match fallback {
            Some(instead) if head.status >= 500 => {
                ex.substitute = Some(instead);
                bump(&self.table.counts.stale_served, 1);
                true
            }
            _ => false,
        }
    }

    /// Starts storing a storable response: under its primary key, or under its variant's
    /// key when it has `Vary` (with a new marker when the named fields changed).
    fn fill_for(&self, p: &Pending, head: &ResponseHead, buf: &[u8], facts: ResponseFacts) -> Fill {
        let names: Vec<Vec<u8>> = values(&head.fields, buf, b"vary")
            .flat_map(|v| v.split(|&c| c == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|n| !n.is_empty())
            .map(<[u8]>::to_ascii_lowercase)
            .collect();
        let (key, marker) = if names.is_empty() {
            (p.primary.clone(), None)
        } else {
            let (names, generation, new) = match self.table.marker(&p.primary) {
                Some((n, g)) if *n == *names => (n, g, false),
                _ => (Rc::from(names), self.table.next_generation(), true),
            };
            let fields = &p.fields;
            let field = |n: &[u8]| fields.iter().find(|(k, _)| k == n).map(|(_, v)| &v[..]);
            let key = variant_key(&p.primary, generation, &names, field);
            (key, new.then_some((names, generation)))
        };
        Fill {
            key,
            marker,
            facts,
            fields: entry::stored_fields(head, buf),
            body: Vec::new(),
        }
    }

    /// Asks for `e` to be fetched again in the background (`stale-while-revalidate`),
    /// conditionally, unless a refresh of it is already out.
    fn ask_refresh(
        &self,
        e: &Rc<Entry>,
        mut p: Pending,
        head: &RequestHead,
        buf: &[u8],
        ex: &mut Exchange,
    ) {
        let mut refreshing = self.refreshing.borrow_mut();
        if refreshing
            .values()
            .any(|r| r.stale.as_ref().is_some_and(|s| s.key == e.key))
        {
            return;
        }
        let mut fields = Vec::with_capacity(256);
        for f in head
            .fields
            .iter()
            .filter(|f| f.kind == proto::FieldKind::Other)
        {
            let n = f.name.get(buf);
            if !REFRESH_DROPS.iter().any(|d| n.eq_ignore_ascii_case(d)) {
                proto::write::put_field(&mut fields, n, f.value.get(buf));
            }
        }
        conditional::revalidation_fields(&mut fields, e.field(b"etag"), e.field(b"last-modified"));
        remember(&mut p, head, buf);
        p.stale = Some(e.clone());
        refreshing.insert(ex.serial, p);
        ex.refresh = Some(Refresh {
            token: ex.serial,
            fields,
        });
        bump(&self.table.counts.refreshes, 1);
    }

    /// Serves `e` to this request: `Age`, `Cache-Status`, and a `304` when the client's
    /// conditional matches.
    fn serve(
        &self,
        e: &Entry,
        head: &RequestHead,
        buf: &[u8],
        ex: &mut Exchange,
        ttl: i64,
    ) -> Verdict<'_> {
        let now = ex.unix_secs();
        let inm = head.value_of(buf, b"if-none-match");
        let ims = head
            .value_of(buf, b"if-modified-since")
            .and_then(|v| proto::date::parse_http_date(v, now));
        let reply = answer_from(e, inm, ims);
        bump(&self.table.counts.hits, 1);
        if ttl < 0 {
            bump(&self.table.counts.stale_served, 1);
        }
        if head.method != Method::Head {
            bump(&self.table.counts.bytes_served, reply.body.len() as u64);
        }
        status_fields(
            &mut ex.response.add,
            Some(e.facts.age(now)),
            &CacheStatus::Hit { ttl },
        );
        Verdict::Serve(reply)
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
        let found = self.table.find(&p.primary, |n| head.value_of(buf, n));
        if matches!(found, Found::VaryMiss) {
            p.fwd = Forward::VaryMiss;
        }
        match found {
            Found::Entry(e) => {
                if let Some(v) = self.use_stored(e, &mut p, head, buf, ex) {
                    return v;
                }
            }
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
                self.table.invalidate(&p.primary);
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
            p.fill = Some(self.fill_for(p, head, buf, facts));
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
        let pending = self.pending.borrow();
        let p = pending.get(&ex.serial)?;
        p.fill.as_ref()?;
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
                    let (primary, url) = (p.primary.clone(), std::mem::take(&mut p.url));
                    drop(pending);
                    self.table.insert(f, &primary, &url);
                }
            }
        }
    }

    fn on_finish(&self, ex: &Exchange) {
        let Some(p) = self.pending.borrow_mut().remove(&ex.serial) else {
            return;
        };
        if p.armed && ex.fallback.is_none() {
            // the gateway answered the upstream's failure with the stale copy
            bump(&self.table.counts.stale_served, 1);
        }
        if let Some(f) = p.fill
            && ex.outcome == Outcome::Forwarded
        {
            // a bodyless response (204) passes no body tap, so no `End` stored it
            self.table.insert(f, &p.primary, &p.url);
        }
        if let Some(g) = p.gate {
            // what it fetched is stored (or not storable): the waiters look again
            let mut inflight = self.inflight.borrow_mut();
            if inflight.get(&p.primary).is_some_and(|x| Rc::ptr_eq(x, &g)) {
                inflight.remove(&p.primary);
            }
            g.open();
        }
    }

    fn on_refresh(&self, token: u64, answer: Option<Fetched<'_>>, wall: u64) {
        let Some(p) = self.refreshing.borrow_mut().remove(&token) else {
            return;
        };
        let (Some(a), Some(stale)) = (answer, &p.stale) else {
            return;
        };
        let mut facts = entry::facts(a.head, a.buf, p.request_time, wall);
        if let Some(ttl) = self.ttl {
            entry::override_lifetime(&mut facts, ttl);
        }
        if a.head.status == 304 {
            self.table
                .replace(Rc::new(stale.freshened(a.head, a.buf, facts)));
            bump(&self.table.counts.revalidated, 1);
            return;
        }
        let fits = a.body.len() as u64 <= self.max_object;
        if fits && facts.storable(&p.request, self.store_set_cookie).is_ok() {
            let mut f = self.fill_for(&p, a.head, a.buf, facts);
            f.body = a.body.to_vec();
            self.table.insert(f, &p.primary, &p.url);
        }
    }

    fn figures(&self) -> Vec<Figure> {
        self.table.figures()
    }

    fn purge(&self, what: &Purge) -> u64 {
        self.table.purge(what)
    }
}
