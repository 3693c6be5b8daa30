//! `Cache-Control` (RFC 9111 §5.2) as a shared cache reads it: the directives of a request
//! and of a response, from every field line of the name. Unknown directives are ignored
//! (§5.2.3); a directive given twice with different values, or an unreadable delta-seconds,
//! makes the response stale (§4.2.1: "considered stale"); a qualified `no-cache="…"` or
//! `private="…"` is taken as the unqualified one (the safe reading).

/// delta-seconds beyond what fits are 2^31 (§1.2.2).
const DELTA_MAX: u32 = 1 << 31;

/// A directive's number: absent, readable, or present but unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Seconds {
    /// Not given.
    #[default]
    Absent,
    /// Given once (or always with the same value).
    Is(u32),
    /// Malformed, or given twice with different values.
    Invalid,
}

impl Seconds {
    /// Merges another occurrence.
    fn add(self, v: Seconds) -> Seconds {
        match (self, v) {
            (Seconds::Absent, v) => v,
            (Seconds::Is(a), Seconds::Is(b)) if a == b => self,
            _ => Seconds::Invalid,
        }
    }

    /// The value, when readable.
    pub fn get(self) -> Option<u32> {
        match self {
            Seconds::Is(n) => Some(n),
            _ => None,
        }
    }

    /// True when given at all.
    pub fn present(self) -> bool {
        self != Seconds::Absent
    }
}

/// The directives of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResponseDirectives {
    /// `max-age`.
    pub max_age: Seconds,
    /// `s-maxage` (a shared cache's own, over `max-age`).
    pub s_maxage: Seconds,
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache`: stored, but revalidated before every use.
    pub no_cache: bool,
    /// `private`: not for a shared cache.
    pub private: bool,
    /// `public`.
    pub public: bool,
    /// `must-revalidate` (or `proxy-revalidate`, the same for a shared cache): never served
    /// stale.
    pub must_revalidate: bool,
    /// `stale-while-revalidate` (RFC 5861 §3).
    pub stale_while_revalidate: Option<u32>,
    /// `stale-if-error` (RFC 5861 §4).
    pub stale_if_error: Option<u32>,
    /// `immutable` (RFC 8246).
    pub immutable: bool,
}

/// The directives of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestDirectives {
    /// `max-age`: the client takes nothing older.
    pub max_age: Seconds,
    /// `max-stale`: `Some(None)` any staleness, `Some(Some(n))` up to n seconds.
    pub max_stale: Option<Option<u32>>,
    /// `min-fresh`: fresh for at least this much longer.
    pub min_fresh: Option<u32>,
    /// `no-cache`: revalidate before answering from cache.
    pub no_cache: bool,
    /// `no-store`: store neither request nor response.
    pub no_store: bool,
    /// `only-if-cached`: 504 rather than go upstream.
    pub only_if_cached: bool,
}

/// One directive: its name (lowercased by the caller's comparison) and its value.
struct Directive<'a> {
    name: &'a [u8],
    value: Option<&'a [u8]>,
}

/// The directives of one field value, in order. A quoted value loses its quotes (escapes are
/// kept as written: no directive read here needs them).
fn each(v: &[u8]) -> impl Iterator<Item = Directive<'_>> {
    let mut rest = v;
    std::iter::from_fn(move || {
        loop {
            rest = rest.trim_ascii_start();
            while let Some(r) = rest.strip_prefix(b",") {
                rest = r.trim_ascii_start();
            }
            if rest.is_empty() {
                return None;
            }
            let end = rest
                .iter()
                .position(|&c| c == b',' || c == b'=')
                .unwrap_or(rest.len());
            let (name, after) = rest.split_at(end);
            let name = name.trim_ascii();
            let Some(after) = after.strip_prefix(b"=") else {
                rest = after;
                if name.is_empty() {
                    continue;
                }
                return Some(Directive { name, value: None });
            };
            let after = after.trim_ascii_start();
            let (value, next) = if let Some(q) = after.strip_prefix(b"\"") {
                // up to the closing quote not preceded by a backslash
                let mut i = 0;
                let mut close = None;
                while let Some(&c) = q.get(i) {
                    match c {
                        b'\\' => i += 2,
                        b'"' => {
                            close = Some(i);
                            break;
                        }
                        _ => i += 1,
                    }
                }
                match close {
                    Some(c) => (
                        q.get(..c).unwrap_or_default(),
                        q.get(c + 1..).unwrap_or_default(),
                    ),
                    None => (q, &b""[..]),
                }
            } else {
                let e = after.iter().position(|&c| c == b',').unwrap_or(after.len());
                let (v, n) = after.split_at(e);
                (v.trim_ascii(), n)
            };
            rest = next;
            return Some(Directive {
                name,
                value: Some(value),
            });
        }
    })
}

/// A delta-seconds value (§1.2.2).
fn delta(v: Option<&[u8]>) -> Seconds {
    match v {
        Some(d) if !d.is_empty() && d.iter().all(u8::is_ascii_digit) => {
            let n = d.iter().try_fold(0u64, |n, c| {
                n.checked_mul(10)?.checked_add(u64::from(c - b'0'))
            });
            Seconds::Is(n.map_or(DELTA_MAX, |n| n.min(u64::from(DELTA_MAX)) as u32))
        }
        _ => Seconds::Invalid,
    }
}

impl ResponseDirectives {
    /// The directives of every `Cache-Control` value in `values`.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> ResponseDirectives {
        let mut d = ResponseDirectives::default();
        for v in values {
            for x in each(v) {
                let is = |n: &str| x.name.eq_ignore_ascii_case(n.as_bytes());
                if is("max-age") {
                    d.max_age = d.max_age.add(delta(x.value));
                } else if is("s-maxage") {
                    d.s_maxage = d.s_maxage.add(delta(x.value));
                } else if is("no-store") {
                    d.no_store = true;
                } else if is("no-cache") {
                    d.no_cache = true;
                } else if is("private") {
                    d.private = true;
                } else if is("public") {
                    d.public = true;
                } else if is("must-revalidate") || is("proxy-revalidate") {
                    d.must_revalidate = true;
                } else if is("stale-while-revalidate") {
                    d.stale_while_revalidate = delta(x.value).get();
                } else if is("stale-if-error") {
                    d.stale_if_error = delta(x.value).get();
                } else if is("immutable") {
                    d.immutable = true;
                }
            }
        }
        d
    }
}

impl RequestDirectives {
    /// The directives of every `Cache-Control` value in `values` (and `Pragma: no-cache`,
    /// §5.4, when there is no `Cache-Control`: pass `pragma_no_cache`).
    pub fn parse<'a>(
        values: impl IntoIterator<Item = &'a [u8]>,
        pragma_no_cache: bool,
    ) -> RequestDirectives {
        let mut d = RequestDirectives::default();
        let mut any = false;
        for v in values {
            for x in each(v) {
                any = true;
                let is = |n: &str| x.name.eq_ignore_ascii_case(n.as_bytes());
                if is("max-age") {
                    d.max_age = d.max_age.add(delta(x.value));
                } else if is("max-stale") {
                    d.max_stale = Some(x.value.and_then(|v| delta(Some(v)).get()));
                } else if is("min-fresh") {
                    d.min_fresh = delta(x.value).get();
                } else if is("no-cache") {
                    d.no_cache = true;
                } else if is("no-store") {
                    d.no_store = true;
                } else if is("only-if-cached") {
                    d.only_if_cached = true;
                }
            }
        }
        if !any && pragma_no_cache {
            d.no_cache = true;
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(values: &[&str]) -> ResponseDirectives {
        ResponseDirectives::parse(values.iter().map(|v| v.as_bytes()))
    }

    #[test]
    fn response_directives_table() {
        let r = resp(&[
            "public, max-age=60",
            "s-maxage=\"120\", stale-while-revalidate=30",
        ]);
        assert_eq!(r.max_age, Seconds::Is(60));
        assert_eq!(r.s_maxage, Seconds::Is(120));
        assert!(r.public && !r.private && !r.no_store);
        assert_eq!(r.stale_while_revalidate, Some(30));
        type Check = fn(&ResponseDirectives) -> bool;
        let cases: &[(&[&str], Check)] = &[
            (&["no-store"], |r| r.no_store),
            (&["NO-CACHE"], |r| r.no_cache),
            (&["no-cache=\"Set-Cookie, X-Foo\""], |r| {
                r.no_cache && !r.private
            }),
            (&["private=\"x\", max-age=5"], |r| {
                r.private && r.max_age == Seconds::Is(5)
            }),
            (&["proxy-revalidate"], |r| r.must_revalidate),
            (&["max-age=5, max-age=6"], |r| r.max_age == Seconds::Invalid),
            (&["max-age=5", "max-age=5"], |r| r.max_age == Seconds::Is(5)),
            (&["max-age=-1"], |r| r.max_age == Seconds::Invalid),
            (&["max-age="], |r| r.max_age == Seconds::Invalid),
            (&["max-age"], |r| r.max_age == Seconds::Invalid),
            (&["max-age=99999999999999999999"], |r| {
                r.max_age == Seconds::Is(DELTA_MAX)
            }),
            (&[" , ,max-age = 7 ,"], |r| r.max_age == Seconds::Is(7)),
            (&["community=\"UCI\", max-age=3"], |r| {
                r.max_age == Seconds::Is(3)
            }),
            (&["x=\"a,b\\\" max-age=1\", max-age=4"], |r| {
                r.max_age == Seconds::Is(4)
            }),
            (&["stale-if-error=x"], |r| r.stale_if_error.is_none()),
            (&["immutable, max-age=31536000"], |r| r.immutable),
            (&[""], |r| *r == ResponseDirectives::default()),
        ];
        for (values, check) in cases {
            assert!(check(&resp(values)), "{values:?}: {:?}", resp(values));
        }
    }

    #[test]
    fn request_directives_table() {
        let req =
            |v: &[&str], pragma| RequestDirectives::parse(v.iter().map(|x| x.as_bytes()), pragma);
        assert_eq!(req(&["max-stale"], false).max_stale, Some(None));
        assert_eq!(req(&["max-stale=10"], false).max_stale, Some(Some(10)));
        assert_eq!(
            req(&["min-fresh=5, only-if-cached"], false).min_fresh,
            Some(5)
        );
        assert!(req(&["only-if-cached"], false).only_if_cached);
        assert!(req(&["no-store"], false).no_store);
        assert_eq!(req(&["max-age=0"], false).max_age, Seconds::Is(0));
        // Pragma counts only without Cache-Control (RFC 9111 §5.4)
        assert!(req(&[], true).no_cache);
        assert!(!req(&["max-age=5"], true).no_cache);
    }
}
