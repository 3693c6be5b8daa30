//! Conditional requests against a stored response: whether a client's `If-None-Match` or
//! `If-Modified-Since` lets the cache answer 304 (RFC 9110 §13.1.2, §13.1.3, precedence
//! §13.2.2; RFC 9111 §4.3.2), and the validators a revalidation sends upstream (§4.3.1).

/// An entity tag: its opaque value (quotes included) and whether it is weak (`W/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ETag<'a> {
    /// `"…"`, quotes included.
    pub opaque: &'a [u8],
    /// `W/`.
    pub weak: bool,
}

/// The entity tag of an `ETag` value; `None` when malformed.
pub fn etag(v: &[u8]) -> Option<ETag<'_>> {
    let v = v.trim_ascii();
    let (weak, rest) = match v.strip_prefix(b"W/") {
        Some(r) => (true, r),
        None => (false, v),
    };
    let inner = rest.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    // etagc = %x21 / %x23-7E / obs-text
    inner
        .iter()
        .all(|&c| c == 0x21 || (0x23..=0x7e).contains(&c) || c >= 0x80)
        .then_some(ETag { opaque: rest, weak })
}

/// True when `If-None-Match` (its combined value) matches the stored `etag` by the weak
/// comparison (§13.1.2: `*` matches any stored representation).
pub fn none_match(if_none_match: &[u8], stored: Option<ETag<'_>>) -> bool {
    let v = if_none_match.trim_ascii();
    if v == b"*" {
        return true;
    }
    let Some(stored) = stored else {
        return false;
    };
    v.split(|&c| c == b',')
        .filter_map(etag)
        .any(|t| t.opaque == stored.opaque)
}

/// What a client's conditional request gets from a stored (fresh, or just validated)
/// response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conditional {
    /// The stored response itself.
    Full,
    /// `304 Not Modified`.
    NotModified,
}

/// Evaluates a GET or HEAD's `If-None-Match` (precedence) or else `If-Modified-Since`
/// against a stored response with `etag` and `last_modified` (seconds; `None`: absent).
/// `if_modified_since` is the parsed date (an unparsable one is ignored, §13.1.3).
pub fn evaluate(
    if_none_match: Option<&[u8]>,
    if_modified_since: Option<u64>,
    etag: Option<ETag<'_>>,
    last_modified: Option<u64>,
) -> Conditional {
    if let Some(inm) = if_none_match {
        return if none_match(inm, etag) {
            Conditional::NotModified
        } else {
            Conditional::Full
        };
    }
    match (if_modified_since, last_modified) {
        (Some(since), Some(lm)) if lm <= since => Conditional::NotModified,
        _ => Conditional::Full,
    }
}

/// The conditional fields a revalidation of a stored response sends upstream (§4.3.1): its
/// entity tag in `If-None-Match`, its `Last-Modified` in `If-Modified-Since`. Appends whole
/// field lines to `out`; false when it has no validator (then the request goes unconditional).
pub fn revalidation_fields(
    out: &mut Vec<u8>,
    etag: Option<&[u8]>,
    last_modified: Option<&[u8]>,
) -> bool {
    let mut any = false;
    if let Some(t) = etag.filter(|t| self::etag(t).is_some()) {
        proto::write::put_field(out, b"If-None-Match", t.trim_ascii());
        any = true;
    }
    if let Some(lm) = last_modified {
        proto::write::put_field(out, b"If-Modified-Since", lm.trim_ascii());
        any = true;
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_tags_table() {
        assert_eq!(
            etag(b"\"abc\""),
            Some(ETag {
                opaque: b"\"abc\"",
                weak: false
            })
        );
        assert_eq!(
            etag(b" W/\"abc\" "),
            Some(ETag {
                opaque: b"\"abc\"",
                weak: true
            })
        );
        assert_eq!(
            etag(b"\"\""),
            Some(ETag {
                opaque: b"\"\"",
                weak: false
            })
        );
        for bad in [
            &b"abc"[..],
            b"\"abc",
            b"w/\"abc\"",
            b"\"a\"b\"",
            b"\"a b\"",
            b"",
        ] {
            assert_eq!(etag(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn conditionals_table_rfc9110_13() {
        let strong = etag(b"\"v1\"");
        let weak = etag(b"W/\"v1\"");
        const LM: u64 = 1_000_000;
        // (If-None-Match, If-Modified-Since, stored ETag, stored Last-Modified) → answer
        type Row<'a> = (
            Option<&'a [u8]>,
            Option<u64>,
            Option<ETag<'a>>,
            Option<u64>,
            Conditional,
        );
        let rows: &[Row<'_>] = &[
            (
                Some(b"\"v1\""),
                None,
                strong,
                None,
                Conditional::NotModified,
            ),
            (
                Some(b"\"v0\", \"v1\""),
                None,
                strong,
                None,
                Conditional::NotModified,
            ),
            (
                Some(b"W/\"v1\""),
                None,
                strong,
                None,
                Conditional::NotModified,
            ), // weak comparison
            (Some(b"\"v1\""), None, weak, None, Conditional::NotModified),
            (Some(b"\"v2\""), None, strong, None, Conditional::Full),
            (Some(b"*"), None, strong, None, Conditional::NotModified),
            (Some(b"*"), None, None, None, Conditional::NotModified),
            (Some(b"\"v1\""), None, None, Some(LM), Conditional::Full),
            // If-None-Match takes precedence over If-Modified-Since (§13.2.2)
            (
                Some(b"\"v2\""),
                Some(LM + 10),
                strong,
                Some(LM),
                Conditional::Full,
            ),
            (
                None,
                Some(LM + 10),
                strong,
                Some(LM),
                Conditional::NotModified,
            ),
            (None, Some(LM), None, Some(LM), Conditional::NotModified),
            (None, Some(LM - 1), None, Some(LM), Conditional::Full),
            (None, Some(LM), None, None, Conditional::Full),
            (None, None, strong, Some(LM), Conditional::Full),
        ];
        for (inm, ims, tag, lm, want) in rows {
            assert_eq!(
                evaluate(*inm, *ims, *tag, *lm),
                *want,
                "{inm:?} {ims:?} {tag:?} {lm:?}"
            );
        }
    }

    #[test]
    fn revalidation_sends_the_stored_validators() {
        let mut out = Vec::new();
        assert!(revalidation_fields(
            &mut out,
            Some(b"\"v1\""),
            Some(b"Sun, 06 Nov 1994 08:49:37 GMT")
        ));
        assert_eq!(
            String::from_utf8_lossy(&out),
            "If-None-Match: \"v1\"\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
        );
        out.clear();
        assert!(!revalidation_fields(&mut out, Some(b"not-a-tag"), None));
        assert!(out.is_empty());
    }
}
