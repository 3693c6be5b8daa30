//! A stored response: what is kept of a response head (its end-to-end fields, RFC 9111 §3.1),
//! the facts freshness needs, the reply a hit sends, the `304` a client's conditional
//! request gets, and the update a `304` from the origin makes (§4.3.4).

use std::rc::Rc;

use proto::write::{put_content_length, put_status_line, reason_phrase};
use proto::{Field, FieldKind, ResponseHead};

use super::directives::{ResponseDirectives, Seconds};
use super::freshness::ResponseFacts;
use crate::reply::LocalReply;

/// Bytes an entry costs beyond its key, fields and body (the structures around them).
const OVERHEAD: u64 = 256;

/// Fields a `304` a client gets carries from the stored response (RFC 9110 §15.4.5).
const NOT_MODIFIED_FIELDS: [&[u8]; 6] = [
    b"cache-control",
    b"content-location",
    b"etag",
    b"expires",
    b"last-modified",
    b"vary",
];

/// The values of every field called `name` (ASCII case-insensitive).
pub fn values<'b>(
    fields: &'b [Field],
    buf: &'b [u8],
    name: &'b [u8],
) -> impl Iterator<Item = &'b [u8]> + 'b {
    fields
        .iter()
        .filter(move |f| f.name.get(buf).eq_ignore_ascii_case(name))
        .map(move |f| f.value.get(buf))
}

/// The facts of a response received at `response_time` for a request sent at
/// `request_time` (seconds since the Unix epoch).
pub fn facts(
    head: &ResponseHead,
    buf: &[u8],
    request_time: u64,
    response_time: u64,
) -> ResponseFacts {
    let (fields, now) = (&head.fields[..], response_time);
    let date_of = |name: &'static [u8]| {
        values(fields, buf, name)
            .next()
            .map(|v| proto::date::parse_http_date(v, now))
    };
    ResponseFacts {
        status: head.status,
        cc: ResponseDirectives::parse(values(fields, buf, b"cache-control")),
        date: date_of(b"date").flatten(),
        expires: date_of(b"expires"),
        last_modified: date_of(b"last-modified").flatten(),
        age: values(fields, buf, b"age")
            .next()
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok()),
        set_cookie: values(fields, buf, b"set-cookie").next().is_some(),
        vary_star: values(fields, buf, b"vary")
            .any(|v| v.split(|&c| c == b',').any(|n| n.trim_ascii() == b"*")),
        request_time,
        response_time,
    }
}

/// Whether a received field is kept in a stored head: not framing, not hop-by-hop, not one
/// the gateway writes itself on every answer (`Date`, `Age`).
fn kept(f: &Field, buf: &[u8]) -> bool {
    match f.kind {
        FieldKind::Other | FieldKind::Via => {
            let n = f.name.get(buf);
            !n.eq_ignore_ascii_case(b"age")
        }
        _ => false,
    }
}

/// The end-to-end field lines of a response head, as stored.
pub fn stored_fields(head: &ResponseHead, buf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.head_len);
    for f in head.fields.iter().filter(|f| kept(f, buf)) {
        proto::write::put_field(&mut out, f.name.get(buf), f.value.get(buf));
    }
    out
}

/// A response in the store.
#[derive(Debug)]
pub struct Entry {
    /// The canonical key it was stored under (primary key, and its variant's values).
    pub key: Box<[u8]>,
    /// Host, path and query as keyed (`host\npath?query`), for purges.
    pub url: Box<[u8]>,
    /// Its `Cache-Tag` values, for purges.
    pub tags: Box<[Box<[u8]>]>,
    /// Freshness facts.
    pub facts: ResponseFacts,
    /// Its stored field lines.
    pub fields: Box<[u8]>,
    /// What a hit sends: status line, stored fields, `Content-Length`, and the body.
    pub reply: Rc<LocalReply>,
}

/// An entry on its way between shards: the same parts, nothing shard-local.
#[derive(Debug)]
pub struct Parcel {
    key: Box<[u8]>,
    url: Box<[u8]>,
    tags: Box<[Box<[u8]>]>,
    facts: ResponseFacts,
    fields: Box<[u8]>,
    reply: LocalReply,
}

impl Entry {
    /// An entry for a response with `status`, stored `fields` and `body`.
    pub fn new(
        key: Box<[u8]>,
        url: Box<[u8]>,
        facts: ResponseFacts,
        fields: Box<[u8]>,
        body: bytes::Bytes,
    ) -> Entry {
        let tags = tags(&fields);
        let reply = Rc::new(render(facts.status, &fields, body));
        Entry {
            key,
            url,
            tags,
            facts,
            fields,
            reply,
        }
    }

    /// A copy to send to another shard (a shared cache's owner answering a lookup); the
    /// body is shared, not copied.
    pub fn parcel(&self) -> Parcel {
        Parcel {
            key: self.key.clone(),
            url: self.url.clone(),
            tags: self.tags.clone(),
            facts: self.facts,
            fields: self.fields.clone(),
            reply: LocalReply::clone(&self.reply),
        }
    }

    /// The entry a parcel from another shard carries.
    pub fn unpack(p: Parcel) -> Entry {
        Entry {
            key: p.key,
            url: p.url,
            tags: p.tags,
            facts: p.facts,
            fields: p.fields,
            reply: Rc::new(p.reply),
        }
    }

    /// Bytes it costs in the store's budget.
    pub fn size(&self) -> u64 {
        (self.key.len() + self.url.len() + self.fields.len() * 2 + self.reply.head.len()) as u64
            + self.reply.body.len() as u64
            + OVERHEAD
    }

    /// The value of its stored field `name`.
    pub fn field(&self, name: &[u8]) -> Option<&[u8]> {
        lines(&self.fields)
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The `304 Not Modified` a client's matching conditional request gets.
    pub fn not_modified(&self) -> LocalReply {
        let mut head = Vec::with_capacity(160);
        put_status_line(&mut head, 304, reason_phrase(304).as_bytes());
        for (n, v) in lines(&self.fields) {
            if NOT_MODIFIED_FIELDS
                .iter()
                .any(|k| n.eq_ignore_ascii_case(k))
            {
                proto::write::put_field(&mut head, n, v);
            }
        }
        LocalReply {
            status: 304,
            head: head.into_boxed_slice(),
            body: bytes::Bytes::new(),
        }
    }

    /// This entry updated by the origin's `304` (§4.3.4): its fields replace the stored ones
    /// of the same name, the freshness facts are the new response's, the body stays.
    pub fn freshened(&self, head: &ResponseHead, buf: &[u8], facts: ResponseFacts) -> Entry {
        let fresh = stored_fields(head, buf);
        let mut merged = Vec::with_capacity(self.fields.len() + fresh.len());
        for (n, v) in lines(&self.fields) {
            if !lines(&fresh).any(|(m, _)| m.eq_ignore_ascii_case(n)) {
                proto::write::put_field(&mut merged, n, v);
            }
        }
        merged.extend_from_slice(&fresh);
        let facts = ResponseFacts {
            status: self.facts.status,
            ..facts
        };
        Entry::new(
            self.key.clone(),
            self.url.clone(),
            facts,
            merged.into_boxed_slice(),
            self.reply.body.clone(),
        )
    }
}

/// Sets a freshness lifetime of `secs` that overrides what the response says (a route's
/// TTL): as `s-maxage`, which a shared cache prefers to anything else.
pub fn override_lifetime(facts: &mut ResponseFacts, secs: u32) {
    facts.cc.s_maxage = Seconds::Is(secs);
}

/// The reply a hit sends.
fn render(status: u16, fields: &[u8], body: bytes::Bytes) -> LocalReply {
    let mut head = Vec::with_capacity(fields.len() + 48);
    put_status_line(&mut head, status, reason_phrase(status).as_bytes());
    head.extend_from_slice(fields);
    if status != 204 {
        // a 204 carries no Content-Length (RFC 9110 §8.6)
        put_content_length(&mut head, body.len() as u64);
    }
    LocalReply {
        status,
        head: head.into_boxed_slice(),
        body,
    }
}

/// The `Cache-Tag` values in stored field lines (comma-separated, trimmed).
fn tags(fields: &[u8]) -> Box<[Box<[u8]>]> {
    lines(fields)
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"cache-tag"))
        .flat_map(|(_, v)| v.split(|&c| c == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
        .map(Box::from)
        .collect()
}

/// Each `Name: value\r\n` line of stored fields as (name, value).
fn lines(fields: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    fields.split(|&c| c == b'\n').filter_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&c| c == b':')?;
        let (n, v) = line.split_at(colon);
        Some((n, v.get(1..).unwrap_or_default().trim_ascii()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &[u8]) -> ResponseHead {
        let mut h = ResponseHead::with_capacity(32);
        let parsed = proto::parse_response(raw, &mut h, &proto::Limits::default());
        assert!(parsed.is_ok(), "{parsed:?}");
        h
    }

    /// An entry for a response with head `raw` (received at time 0) and `body`.
    fn entry_of(raw: &[u8], body: &[u8]) -> Entry {
        let h = head(raw);
        Entry::new(
            Box::from(&b"k"[..]),
            Box::from(&b"u"[..]),
            facts(&h, raw, 0, 0),
            stored_fields(&h, raw).into_boxed_slice(),
            bytes::Bytes::copy_from_slice(body),
        )
    }

    #[test]
    fn stored_heads_keep_end_to_end_fields_only() {
        let raw = b"HTTP/1.1 200 OK\r\nDate: Tue, 01 Dec 2026 10:00:00 GMT\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\nAge: 3\r\nETag: \"a\"\r\nCache-Tag: x, y ,\r\nCache-Control: max-age=60\r\n\r\nhi";
        let h = head(raw);
        let fields = stored_fields(&h, raw);
        assert_eq!(
            fields,
            b"ETag: \"a\"\r\nCache-Tag: x, y ,\r\nCache-Control: max-age=60\r\n".to_vec()
        );
        let f = facts(&h, raw, 100, 100);
        assert_eq!(f.age, Some(3));
        assert_eq!(f.cc.max_age, Seconds::Is(60));
        let e = Entry::new(
            Box::from(&b"k"[..]),
            Box::from(&b"u"[..]),
            f,
            fields.into_boxed_slice(),
            bytes::Bytes::from_static(b"hi"),
        );
        assert_eq!(&*e.tags, &[Box::from(&b"x"[..]), Box::from(&b"y"[..])]);
        assert_eq!(e.field(b"etag"), Some(&b"\"a\""[..]));
        assert!(
            e.reply
                .head
                .ends_with(b"Cache-Control: max-age=60\r\nContent-Length: 2\r\n")
        );
        let nm = e.not_modified();
        assert_eq!(
            &*nm.head,
            b"HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\nCache-Control: max-age=60\r\n"
        );
    }

    #[test]
    fn a_stored_204_is_served_without_content_length() {
        let e = entry_of(
            b"HTTP/1.1 204 No Content\r\nCache-Control: max-age=9\r\n\r\n",
            b"",
        );
        assert_eq!(
            &*e.reply.head,
            b"HTTP/1.1 204 No Content\r\nCache-Control: max-age=9\r\n"
        );
    }

    #[test]
    fn a_304_replaces_fields_of_the_same_name_and_keeps_the_body() {
        let e = entry_of(
            b"HTTP/1.1 200 OK\r\nETag: \"a\"\r\nX-Old: 1\r\nCache-Control: max-age=1\r\nContent-Length: 2\r\n\r\n",
            b"hi",
        );
        let raw304 =
            b"HTTP/1.1 304 Not Modified\r\nCache-Control: max-age=100\r\nETag: \"a\"\r\n\r\n";
        let h304 = head(raw304);
        let f = facts(&h304, raw304, 50, 50);
        let n = e.freshened(&h304, raw304, f);
        assert_eq!(n.facts.status, 200);
        assert_eq!(n.facts.cc.max_age, Seconds::Is(100));
        assert_eq!(n.field(b"x-old"), Some(&b"1"[..]));
        assert_eq!(n.field(b"cache-control"), Some(&b"max-age=100"[..]));
        assert_eq!(&*n.reply.body, b"hi");
    }
}
