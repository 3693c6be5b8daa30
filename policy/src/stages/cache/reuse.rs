//! How the cache stage uses a stored response: serving it (`Age`, `Cache-Status`, a `304`
//! for a matching conditional), revalidating it with the origin and taking the origin's
//! answer (a `304` freshens it; a `5xx` gets the stale copy where `stale-if-error` allows),
//! and asking for a background refresh (`stale-while-revalidate`).

use std::rc::Rc;

use proto::{Method, RequestHead, ResponseHead};

use super::{Cache, Pending, remember};
use crate::cache::conditional::{self, Conditional};
use crate::cache::entry::Entry;
use crate::cache::freshness::{ResponseFacts, Reuse};
use crate::cache::status::{CacheStatus, Forward, put_cache_status};
use crate::cache::table::bump;
use crate::exchange::{Exchange, Refresh, Replacement};
use crate::reply::LocalReply;
use crate::stage::Verdict;

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

/// Appends `Age` and `Cache-Status` field lines.
pub(super) fn status_fields(out: &mut Vec<u8>, age: Option<u64>, status: &CacheStatus) {
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
    /// A stored response for this request: served (`Some`), or revalidated on the way
    /// upstream (`None`; the stale copy held for an origin failure when it allows that).
    pub(super) fn use_stored(
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
    pub(super) fn after_stale(
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
            self.keep_fresh(&p.primary, fresh.clone());
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
}
