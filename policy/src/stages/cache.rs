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

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use proto::{Method, RequestHead, ResponseHead};
use serde::Deserialize;

use crate::cache::Purge;
use crate::cache::conditional::{self, Conditional};
use crate::cache::directives::RequestDirectives;
use crate::cache::entry::{self, Entry, values};
use crate::cache::freshness::{RequestFacts, Reuse};
use crate::cache::key::{KeySpec, QueryKey, normalise};
use crate::cache::status::{CacheStatus, Forward, put_cache_status};
use crate::cache::store::{Eviction, Store};
use crate::exchange::{Exchange, Replacement};
use crate::reply::LocalReply;
use crate::stage::{BodyTap, Figure, Piece, Rejection, Stage, StageBuild, StageContext, Verdict};

/// `[[route.policy]] kind = "cache"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Bytes of stored responses per shard (keys, heads and bodies). Default "64MiB".
    #[serde(default = "default_size")]
    pub size: conf::ByteSize,
    /// Largest body stored; larger ones stream through uncached. Default "8MiB".
    #[serde(default = "default_max_object")]
    pub max_object: conf::ByteSize,
    /// "s3fifo" or "lru". Default "s3fifo".
    #[serde(default)]
    pub eviction: EvictionName,
    /// A freshness lifetime for every storable response, instead of what it says.
    #[serde(default)]
    pub ttl: Option<conf::Duration>,
    /// What of the query keys an object: "as-is", "sorted" or "ignore". Default "as-is".
    #[serde(default)]
    pub query: QueryName,
    /// Query parameters left out of the key (the rest sorted).
    #[serde(default)]
    pub query_exclude: Vec<String>,
    /// Only these query parameters key an object (sorted).
    #[serde(default)]
    pub query_include: Vec<String>,
    /// Request fields whose values join the key.
    #[serde(default)]
    pub key_headers: Vec<String>,
    /// Store responses that set cookies. Default false.
    #[serde(default)]
    pub store_set_cookie: bool,
}

/// `eviction = "…"`
#[derive(Debug, Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum EvictionName {
    /// S3-FIFO.
    #[default]
    S3fifo,
    /// Least recently used.
    Lru,
}

/// `query = "…"`
#[derive(Debug, Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
pub enum QueryName {
    /// As received.
    #[default]
    AsIs,
    /// Parameters sorted.
    Sorted,
    /// Left out.
    Ignore,
}

fn default_size() -> conf::ByteSize {
    conf::ByteSize(64 << 20)
}
fn default_max_object() -> conf::ByteSize {
    conf::ByteSize(8 << 20)
}

/// What the store holds under a key's hash.
enum Slot {
    /// A response (its key text is checked on lookup: a hash collision is a miss).
    Response(Rc<Entry>),
    /// The primary key's responses vary on these request fields: each variant is stored
    /// under the primary key, this generation and the request's values. A new marker gets
    /// a new generation, so variants of an invalidated or replaced one are never found.
    Vary {
        key: Box<[u8]>,
        names: Rc<[Vec<u8>]>,
        generation: u64,
    },
}

/// What a lookup found.
enum Found {
    Entry(Rc<Entry>),
    UriMiss,
    VaryMiss,
}

/// A response being stored while it streams to the client.
struct Fill {
    key: Vec<u8>,
    /// A `Vary` marker to store first (a new one for this primary key).
    marker: Option<(Rc<[Vec<u8>]>, u64)>,
    facts: crate::cache::freshness::ResponseFacts,
    fields: Vec<u8>,
    body: Vec<u8>,
}

/// What the stage keeps of an exchange that went upstream, until it finishes.
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
    fill: Option<Fill>,
}

/// What the stage counts on its shard.
#[derive(Default)]
struct Counts {
    hits: Cell<u64>,
    misses: Cell<u64>,
    stored: Cell<u64>,
    revalidated: Cell<u64>,
    stale_served: Cell<u64>,
    invalidated: Cell<u64>,
    purged: Cell<u64>,
    bytes_served: Cell<u64>,
}

fn bump(c: &Cell<u64>, n: u64) {
    c.set(c.get().wrapping_add(n));
}

/// The stage.
pub struct Cache {
    counts: Counts,
    spec: KeySpec,
    max_object: u64,
    ttl: Option<u32>,
    store_set_cookie: bool,
    /// Boxed: the store's tables would make every stage variant as large.
    store: Box<RefCell<Store<Slot>>>,
    pending: RefCell<HashMap<u64, Pending>>,
    generation: Cell<u64>,
    hasher: ahash::RandomState,
}

impl StageBuild for Cache {
    const KIND: &'static str = "cache";
    type Config = Config;

    fn build(c: Config, _ctx: &StageContext<'_>) -> Result<Self, String> {
        let lower =
            |v: &[String]| -> Vec<Vec<u8>> { v.iter().map(|s| s.as_bytes().to_vec()).collect() };
        let query = match (
            c.query,
            c.query_exclude.is_empty(),
            c.query_include.is_empty(),
        ) {
            (_, false, false) => {
                return Err("`query_exclude` and `query_include` exclude each other".into());
            }
            (QueryName::Ignore, false, _) | (QueryName::Ignore, _, false) => {
                return Err("`query = \"ignore\"` keys no parameters: drop `query_exclude` / `query_include`".into());
            }
            (_, false, true) => QueryKey::Without(lower(&c.query_exclude)),
            (_, true, false) => QueryKey::Only(lower(&c.query_include)),
            (QueryName::AsIs, true, true) => QueryKey::AsIs,
            (QueryName::Sorted, true, true) => QueryKey::Sorted,
            (QueryName::Ignore, true, true) => QueryKey::Ignored,
        };
        let mut fields = Vec::new();
        for h in &c.key_headers {
            if h.is_empty() || !h.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                return Err(format!("`key_headers`: `{h}` is not a field name"));
            }
            fields.push(h.to_ascii_lowercase().into_bytes());
        }
        if c.size.0 == 0 {
            return Err("`size` must be above 0".into());
        }
        if c.max_object.0 > c.size.0 {
            return Err("`max_object` is larger than `size`: no such object could be kept".into());
        }
        let ttl = match c.ttl {
            None => None,
            Some(d) => Some(u32::try_from(d.0.as_secs()).map_err(|_| "`ttl` is too long")?),
        };
        let eviction = match c.eviction {
            EvictionName::S3fifo => Eviction::S3Fifo,
            EvictionName::Lru => Eviction::Lru,
        };
        Ok(Cache {
            spec: KeySpec { query, fields },
            max_object: c.max_object.0,
            ttl,
            store_set_cookie: c.store_set_cookie,
            store: Box::new(RefCell::new(Store::new(eviction, c.size.0))),
            pending: RefCell::new(HashMap::new()),
            generation: Cell::new(0),
            hasher: ahash::RandomState::new(),
            counts: Counts::default(),
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

/// The key a variant is stored under.
fn variant_key<'a>(
    primary: &[u8],
    generation: u64,
    names: &[Vec<u8>],
    field: impl Fn(&[u8]) -> Option<&'a [u8]>,
) -> Vec<u8> {
    let mut k = Vec::with_capacity(primary.len() + 32);
    k.extend_from_slice(primary);
    k.extend_from_slice(b"\n\0");
    proto::write::put_decimal(&mut k, generation);
    for n in names {
        k.push(b'\n');
        k.extend_from_slice(n);
        match field(n) {
            Some(v) => {
                k.push(b':');
                k.extend_from_slice(&normalise(v));
            }
            None => k.push(b'!'),
        }
    }
    k
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
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    fn find<'a>(&self, primary: &[u8], field: impl Fn(&[u8]) -> Option<&'a [u8]>) -> Found {
        let mut store = self.store.borrow_mut();
        let (names, generation) = match store.get(self.hash(primary)) {
            Some(Slot::Response(e)) if *e.key == *primary => return Found::Entry(e.clone()),
            Some(Slot::Vary {
                key,
                names,
                generation,
            }) if **key == *primary => (names.clone(), *generation),
            _ => return Found::UriMiss,
        };
        let vk = variant_key(primary, generation, &names, field);
        match store.get(self.hash(&vk)) {
            Some(Slot::Response(e)) if *e.key == *vk => Found::Entry(e.clone()),
            _ => Found::VaryMiss,
        }
    }

    /// The `Vary` marker stored for `primary`, if any.
    fn marker(&self, primary: &[u8]) -> Option<(Rc<[Vec<u8>]>, u64)> {
        match self.store.borrow().peek(self.hash(primary)) {
            Some(Slot::Vary {
                key,
                names,
                generation,
            }) if **key == *primary => Some((names.clone(), *generation)),
            _ => None,
        }
    }

    fn next_generation(&self) -> u64 {
        self.generation.set(self.generation.get() + 1);
        self.generation.get()
    }

    /// Stores a finished fill.
    fn insert(&self, f: Fill, primary: &[u8], url: &[u8]) {
        let mut store = self.store.borrow_mut();
        if let Some((names, generation)) = f.marker {
            let size = (primary.len() * 2 + names.iter().map(Vec::len).sum::<usize>()) as u64 + 64;
            let slot = Slot::Vary {
                key: Box::from(primary),
                names,
                generation,
            };
            if !store.insert(self.hash(primary), slot, size) {
                return;
            }
        }
        let e = Entry::new(
            f.key.into_boxed_slice(),
            Box::from(url),
            f.facts,
            f.fields.into_boxed_slice(),
            f.body.into_boxed_slice(),
        );
        let size = e.size();
        let h = self.hash(&e.key);
        if store.insert(h, Slot::Response(Rc::new(e)), size) {
            bump(&self.counts.stored, 1);
        }
    }

    /// Re-stores `e` under its own key (a freshened entry).
    fn replace(&self, e: Rc<Entry>) {
        let size = e.size();
        let h = self.hash(&e.key);
        self.store.borrow_mut().insert(h, Slot::Response(e), size);
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
        bump(&self.counts.hits, 1);
        if ttl < 0 {
            bump(&self.counts.stale_served, 1);
        }
        if head.method != Method::Head {
            bump(&self.counts.bytes_served, reply.body.len() as u64);
        }
        status_fields(
            &mut ex.response.add,
            Some(e.facts.age(now)),
            &CacheStatus::Hit { ttl },
        );
        Verdict::Serve(reply)
    }

    /// Forgets what is stored for `primary` (an unsafe request succeeded).
    fn invalidate(&self, primary: &[u8]) {
        if self.store.borrow_mut().remove(self.hash(primary)).is_some() {
            bump(&self.counts.invalidated, 1);
        }
    }

    /// Starts an exchange that goes upstream.
    fn pend(&self, ex: &Exchange, p: Pending) {
        if !p.invalidate {
            bump(&self.counts.misses, 1);
        }
        self.pending.borrow_mut().insert(ex.serial, p);
    }
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

/// Whether stored URL `url` (`host\npath`) is what purge value `v` names (`host/path` or
/// `/path` on any host); `prefix`: `v` may be a prefix of it.
fn names_url(url: &[u8], v: &[u8], prefix: bool) -> bool {
    let split = url.iter().position(|&c| c == b'\n').unwrap_or(url.len());
    let (host, path) = (
        url.get(..split).unwrap_or_default(),
        url.get(split + 1..).unwrap_or_default(),
    );
    let same = |have: &[u8], want: &[u8]| {
        if prefix {
            have.starts_with(want)
        } else {
            have == want
        }
    };
    if v.starts_with(b"/") {
        return same(path, v);
    }
    let vs = v.iter().position(|&c| c == b'/').unwrap_or(v.len());
    let (vh, vp) = (
        v.get(..vs).unwrap_or_default(),
        v.get(vs..).unwrap_or_default(),
    );
    vh.eq_ignore_ascii_case(host) && same(path, vp)
}

impl Stage for Cache {
    fn on_request(&self, head: &RequestHead, buf: &[u8], ex: &mut Exchange) -> Verdict<'_> {
        let get = head.method == Method::Get;
        if !(get || head.method == Method::Head || unsafe_method(head.method)) {
            return Verdict::Continue;
        }
        let field = |n: &[u8]| head.value_of(buf, n);
        let host = head.authority(buf).unwrap_or_default();
        let primary = self.spec.key(host, head.path(buf), field);
        let now = ex.unix_secs();
        let pragma =
            values(&head.fields, buf, b"pragma").any(|v| v.eq_ignore_ascii_case(b"no-cache"));
        let cc = RequestDirectives::parse(values(&head.fields, buf, b"cache-control"), pragma);
        let request = RequestFacts {
            get,
            authorization: field(b"authorization").is_some(),
            cc,
        };
        let mut p = Pending {
            primary,
            url: url_of(head, buf),
            invalidate: unsafe_method(head.method),
            request,
            request_time: now,
            fields: Vec::new(),
            fwd: Forward::UriMiss,
            stale: None,
            if_none_match: field(b"if-none-match").map(<[u8]>::to_vec),
            if_modified_since: field(b"if-modified-since")
                .and_then(|v| proto::date::parse_http_date(v, now)),
            armed: false,
            fill: None,
        };
        if p.invalidate {
            self.pend(ex, p);
            return Verdict::Continue;
        }
        if get {
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
        match self.find(&p.primary, field) {
            Found::Entry(e) => {
                let cc = &e.facts.cc;
                if request.authorization
                    && !(cc.public || cc.must_revalidate || cc.s_maxage.present())
                {
                    // stored for requests without credentials (RFC 9111 §3.5)
                    p.fwd = Forward::Bypass;
                    self.pend(ex, p);
                    return Verdict::Continue;
                }
                match e.facts.reuse(&request.cc, now) {
                    Reuse::Fresh { ttl } => {
                        return self.serve(
                            &e,
                            head,
                            buf,
                            ex,
                            i64::try_from(ttl).unwrap_or(i64::MAX),
                        );
                    }
                    Reuse::Stale { .. } => {
                        let stale = e.facts.age(now).saturating_sub(e.facts.lifetime());
                        return self.serve(
                            &e,
                            head,
                            buf,
                            ex,
                            -i64::try_from(stale).unwrap_or(i64::MAX),
                        );
                    }
                    Reuse::StaleIfError { allowed } => {
                        if allowed {
                            let mut fields = Vec::new();
                            let stale = e.facts.age(now).saturating_sub(e.facts.lifetime());
                            let status = CacheStatus::Hit {
                                ttl: -i64::try_from(stale).unwrap_or(i64::MAX),
                            };
                            status_fields(&mut fields, Some(e.facts.age(now)), &status);
                            ex.fallback = Some(Replacement {
                                reply: e.reply.clone(),
                                fields,
                            });
                            p.armed = true;
                        }
                        p.fwd = Forward::Stale;
                    }
                    Reuse::Revalidate => {
                        p.fwd = if request.cc.no_cache || request.cc.max_age.get() == Some(0) {
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
                conditional::revalidation_fields(
                    &mut add,
                    e.field(b"etag"),
                    e.field(b"last-modified"),
                );
                edits.add = add;
                p.stale = Some(e);
            }
            Found::UriMiss => p.fwd = Forward::UriMiss,
            Found::VaryMiss => p.fwd = Forward::VaryMiss,
        }
        if request.cc.only_if_cached {
            return Verdict::Reject(Rejection::new(
                504,
                "cache.only_if_cached",
                "only-if-cached, and no stored response can be used",
            ));
        }
        self.pend(ex, p);
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
                self.invalidate(&p.primary);
            }
            return;
        }
        let now = ex.unix_secs();
        let mut facts = entry::facts(head, buf, p.request_time, now);
        if let Some(ttl) = self.ttl {
            entry::override_lifetime(&mut facts, ttl);
        }
        if let Some(stale) = &p.stale {
            if head.status == 304 {
                let fresh = Rc::new(stale.freshened(head, buf, facts));
                self.replace(fresh.clone());
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
                bump(&self.counts.revalidated, 1);
                return;
            }
            if head.status >= 500
                && let Some(instead) = fallback
            {
                ex.substitute = Some(instead);
                bump(&self.counts.stale_served, 1);
                return;
            }
        }
        let storable = match facts.storable(&p.request, self.store_set_cookie) {
            Ok(()) if head.status == 304 => Err("status"),
            Ok(()) if head.content_length.is_some_and(|n| n > self.max_object) => Err("too-large"),
            Ok(()) => Ok(()),
            Err(why) => Err(why.as_str()),
        };
        if storable.is_ok() {
            let vary: Vec<&[u8]> = values(&head.fields, buf, b"vary").collect();
            let names: Vec<Vec<u8>> = vary
                .iter()
                .flat_map(|v| v.split(|&c| c == b','))
                .map(<[u8]>::trim_ascii)
                .filter(|n| !n.is_empty())
                .map(<[u8]>::to_ascii_lowercase)
                .collect();
            let (key, marker) = if names.is_empty() {
                (p.primary.clone(), None)
            } else {
                let (names, generation, new) = match self.marker(&p.primary) {
                    Some((n, g)) if *n == *names => (n, g, false),
                    _ => (Rc::from(names), self.next_generation(), true),
                };
                let fields = &p.fields;
                let field = |n: &[u8]| fields.iter().find(|(k, _)| k == n).map(|(_, v)| &v[..]);
                let key = variant_key(&p.primary, generation, &names, field);
                (key, new.then_some((names, generation)))
            };
            p.fill = Some(Fill {
                key,
                marker,
                facts,
                fields: entry::stored_fields(head, buf),
                body: Vec::new(),
            });
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
                    let (primary, url) =
                        (std::mem::take(&mut p.primary), std::mem::take(&mut p.url));
                    drop(pending);
                    self.insert(f, &primary, &url);
                }
            }
        }
    }

    fn on_finish(&self, ex: &Exchange) {
        let p = self.pending.borrow_mut().remove(&ex.serial);
        if p.is_some_and(|p| p.armed) && ex.fallback.is_none() {
            // the gateway answered the upstream's failure with the stale copy
            bump(&self.counts.stale_served, 1);
        }
    }

    fn figures(&self) -> Vec<Figure> {
        let c = &self.counts;
        let count = |name, v: &Cell<u64>| Figure {
            name,
            value: v.get(),
            gauge: false,
        };
        let store = self.store.borrow();
        vec![
            count("hits", &c.hits),
            count("misses", &c.misses),
            count("stored", &c.stored),
            count("revalidated", &c.revalidated),
            count("stale_served", &c.stale_served),
            count("invalidated", &c.invalidated),
            count("purged", &c.purged),
            count("bytes_served", &c.bytes_served),
            Figure {
                name: "entries",
                value: store.len() as u64,
                gauge: true,
            },
            Figure {
                name: "bytes_stored",
                value: store.used(),
                gauge: true,
            },
        ]
    }

    fn purge(&self, what: &Purge) -> u64 {
        let mut removed = 0;
        let v = what.value().as_bytes();
        self.store.borrow_mut().retain(|_, slot| {
            let Slot::Response(e) = slot else {
                return true;
            };
            let gone = match what {
                Purge::Key(_) => names_url(&e.url, v, false),
                Purge::Prefix(_) => names_url(&e.url, v, true),
                Purge::Tag(_) => e.tags.iter().any(|t| **t == *v),
            };
            removed += u64::from(gone);
            !gone
        });
        bump(&self.counts.purged, removed);
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_values_name_urls_table() {
        let rows: &[(&[u8], &[u8], bool, bool)] = &[
            (b"a.example\n/x?q=1", b"a.example/x?q=1", false, true),
            (b"a.example\n/x?q=1", b"A.example/x?q=1", false, true),
            (b"a.example\n/x?q=1", b"/x?q=1", false, true),
            (b"a.example\n/x?q=1", b"/x", false, false),
            (b"a.example\n/x?q=1", b"/x", true, true),
            (b"a.example\n/x?q=1", b"b.example/x?q=1", false, false),
            (b"a.example\n/x/y", b"a.example/x/", true, true),
            (b"a.example\n/xy", b"a.example/x/", true, false),
            (b"a.example\n/xy", b"a.example", true, true),
            (b"a.example\n/xy", b"a.example", false, false),
        ];
        for (url, v, prefix, want) in rows {
            assert_eq!(
                names_url(url, v, *prefix),
                *want,
                "{:?} {:?} prefix={prefix}",
                String::from_utf8_lossy(url),
                String::from_utf8_lossy(v)
            );
        }
    }

    #[test]
    fn variant_keys_differ_by_generation_and_value() {
        let names = [b"accept-encoding".to_vec()];
        let gz = |_: &[u8]| Some(&b"gzip"[..]);
        let none = |_: &[u8]| None;
        let a = variant_key(b"h\n/", 1, &names, gz);
        assert_ne!(a, variant_key(b"h\n/", 2, &names, gz));
        assert_ne!(a, variant_key(b"h\n/", 1, &names, none));
        assert_eq!(
            a,
            variant_key(b"h\n/", 1, &names, |_: &[u8]| Some(&b" gzip "[..]))
        );
    }
}
