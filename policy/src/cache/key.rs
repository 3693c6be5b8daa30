//! Cache keys (RFC 9111 §2, §4.1): the primary key — host, path and query as the route
//! configures (all of it, sorted, some parameters left out, or only some kept) plus chosen
//! request fields — as canonical text that every entry keeps (a lookup compares it, so a
//! digest collision can never serve one URL's object for another), and the secondary key of
//! a response's `Vary`: the named request fields' values, normalised, to match later requests.

/// What of the query goes into the key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum QueryKey {
    /// The query as received.
    #[default]
    AsIs,
    /// Its parameters sorted (so `?b=2&a=1` and `?a=1&b=2` share an entry).
    Sorted,
    /// Sorted, without these parameters (tracking parameters, say).
    Without(Vec<Vec<u8>>),
    /// Sorted, only these parameters.
    Only(Vec<Vec<u8>>),
    /// None of it.
    Ignored,
}

/// How a route builds its keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeySpec {
    /// The query's part.
    pub query: QueryKey,
    /// Request fields whose values go into the key (lowercase names).
    pub fields: Vec<Vec<u8>>,
}

/// The parameter's name (before `=`).
fn param_name(p: &[u8]) -> &[u8] {
    p.split(|&c| c == b'=').next().unwrap_or_default()
}

impl KeySpec {
    /// The primary key of a request for `host` (lowercased here) and `target` (path and
    /// query), with `field(name)` giving a request field's (combined) value.
    pub fn key<'a>(
        &self,
        host: &[u8],
        target: &[u8],
        field: impl Fn(&[u8]) -> Option<&'a [u8]>,
    ) -> Vec<u8> {
        let (path, query) = match target.iter().position(|&c| c == b'?') {
            Some(i) => (
                target.get(..i).unwrap_or_default(),
                target.get(i + 1..).unwrap_or_default(),
            ),
            None => (target, &b""[..]),
        };
        let mut out = Vec::with_capacity(host.len() + target.len() + 8);
        out.extend(host.iter().map(u8::to_ascii_lowercase));
        out.push(b'\n');
        out.extend_from_slice(path);
        let mut params: Vec<&[u8]> = query
            .split(|&c| c == b'&')
            .filter(|p| !p.is_empty())
            .collect();
        match &self.query {
            QueryKey::AsIs => {
                if !query.is_empty() {
                    out.push(b'?');
                    out.extend_from_slice(query);
                }
                params.clear();
            }
            QueryKey::Ignored => params.clear(),
            QueryKey::Sorted => {}
            QueryKey::Without(names) => {
                params.retain(|p| !names.iter().any(|n| n == param_name(p)))
            }
            QueryKey::Only(names) => params.retain(|p| names.iter().any(|n| n == param_name(p))),
        }
        params.sort_unstable();
        for (i, p) in params.iter().enumerate() {
            out.push(if i == 0 { b'?' } else { b'&' });
            out.extend_from_slice(p);
        }
        for name in &self.fields {
            out.push(b'\n');
            out.extend_from_slice(name);
            out.push(b':');
            if let Some(v) = field(name) {
                out.extend_from_slice(v.trim_ascii());
            }
        }
        out
    }
}

/// A response's `Vary` as stored: the field names (lowercased) and the values the request
/// that got it had for them (normalised).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Variant {
    /// Names, lowercased, in the order `Vary` lists them.
    pub names: Vec<Vec<u8>>,
    /// The request's value of each (`None`: absent).
    pub values: Vec<Option<Vec<u8>>>,
}

/// A field value normalised for comparison (§4.1: "normalizing both header values in a way
/// that is known to have identical semantics"): list members trimmed and joined by `,`.
pub fn normalise(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    for (i, member) in v.split(|&c| c == b',').enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(member.trim_ascii());
    }
    out
}

impl Variant {
    /// The variant a response with `vary` (its combined `Vary` values) stores for a request
    /// whose fields `field(name)` gives; `None` for `Vary: *` (never matches, §4.1).
    pub fn of<'a>(vary: &[u8], field: impl Fn(&[u8]) -> Option<&'a [u8]>) -> Option<Variant> {
        let mut v = Variant::default();
        for name in vary.split(|&c| c == b',').map(<[u8]>::trim_ascii) {
            if name.is_empty() {
                continue;
            }
            if name == b"*" {
                return None;
            }
            let lower = name.to_ascii_lowercase();
            if v.names.contains(&lower) {
                continue;
            }
            v.values.push(field(&lower).map(normalise));
            v.names.push(lower);
        }
        Some(v)
    }

    /// True when a request with fields `field(name)` matches this variant (§4.1).
    pub fn matches<'a>(&self, field: impl Fn(&[u8]) -> Option<&'a [u8]>) -> bool {
        self.names
            .iter()
            .zip(&self.values)
            .all(|(n, want)| field(n).map(normalise) == *want)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &[u8]) -> Option<&'static [u8]> {
        None
    }

    #[test]
    fn primary_keys_table() {
        let spec = |query| KeySpec {
            query,
            fields: Vec::new(),
        };
        let without = QueryKey::Without(vec![b"utm_source".to_vec()]);
        let only = QueryKey::Only(vec![b"id".to_vec()]);
        let rows: &[(QueryKey, &str, &str)] = &[
            (QueryKey::AsIs, "/a?b=2&a=1", "api.test\n/a?b=2&a=1"),
            (QueryKey::AsIs, "/a", "api.test\n/a"),
            (QueryKey::Sorted, "/a?b=2&a=1", "api.test\n/a?a=1&b=2"),
            (QueryKey::Sorted, "/a?&&b=2&", "api.test\n/a?b=2"),
            (without.clone(), "/a?utm_source=x&id=3", "api.test\n/a?id=3"),
            (without, "/a?utm_source=x", "api.test\n/a"),
            (only.clone(), "/a?x=1&id=3&y", "api.test\n/a?id=3"),
            (only, "/a?ids=3", "api.test\n/a"),
            (QueryKey::Ignored, "/a?x=1", "api.test\n/a"),
        ];
        for (q, target, want) in rows {
            let k = spec(q.clone()).key(b"API.test", target.as_bytes(), none);
            assert_eq!(String::from_utf8_lossy(&k), *want, "{q:?} {target}");
        }
        // chosen fields: present, absent, trimmed; an absent one differs from an empty one
        let s = KeySpec {
            query: QueryKey::AsIs,
            fields: vec![b"x-tenant".to_vec()],
        };
        let with = s.key(b"h", b"/", |_| Some(b" t1 ".as_slice()));
        assert_eq!(with, b"h\n/\nx-tenant:t1");
        assert_eq!(s.key(b"h", b"/", none), b"h\n/\nx-tenant:");
        // a path cannot pose as a host or a field: the separators are newlines, which no
        // parsed target or host holds
        assert_ne!(s.key(b"h", b"/a", none), s.key(b"h\n/a", b"", none));
    }

    #[test]
    fn vary_table_rfc9111_4_1() {
        let fields = |pairs: &'static [(&'static str, &'static str)]| {
            move |n: &[u8]| {
                pairs
                    .iter()
                    .find(|(k, _)| k.as_bytes().eq_ignore_ascii_case(n))
                    .map(|(_, v)| v.as_bytes())
            }
        };
        let stored = Variant::of(
            b"Accept-Encoding, accept-language",
            fields(&[("accept-encoding", "gzip,  br")]),
        )
        .unwrap_or_default();
        assert_eq!(
            stored.names,
            vec![b"accept-encoding".to_vec(), b"accept-language".to_vec()]
        );
        // same value after normalising, the other field absent in both: a match
        assert!(stored.matches(fields(&[("Accept-Encoding", "gzip , br")])));
        // a different value, or a field present that was absent: no match
        assert!(!stored.matches(fields(&[("accept-encoding", "br")])));
        assert!(!stored.matches(fields(&[
            ("accept-encoding", "gzip, br"),
            ("accept-language", "de")
        ])));
        // Vary: * never matches
        assert_eq!(Variant::of(b"accept, *", none), None);
        // no Vary: every request matches
        assert!(Variant::of(b"", none).is_some_and(|v| v.matches(fields(&[("x", "y")]))));
        // a name listed twice counts once
        assert_eq!(Variant::of(b"a, A", none).map(|v| v.names.len()), Some(1));
    }
}
