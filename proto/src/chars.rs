//! Byte-class tables from the RFC 9110 / RFC 3986 grammars, built at compile time: one lookup
//! per byte on the parser's hot loops.

macro_rules! table {
    ($pred:ident) => {{
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = $pred(i as u8);
            i += 1;
        }
        t
    }};
}

const fn is_tchar_fn(b: u8) -> bool {
    // tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
    //         "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA          (RFC 9110 §5.6.2)
    matches!(
        b,
        b'!' | b'#'
            | b'$'
            | b'%'
            | b'&'
            | b'\''
            | b'*'
            | b'+'
            | b'-'
            | b'.'
            | b'^'
            | b'_'
            | b'`'
            | b'|'
            | b'~'
    ) || b.is_ascii_alphanumeric()
}

const fn is_uri_fn(b: u8) -> bool {
    // RFC 3986: unreserved / pct-encoded ("%") / sub-delims / ":" / "@" / "/" / "?"
    // plus "[" "]" for IP-literals in absolute-form. Excludes "#" (fragments are never sent),
    // "\", SP, CTLs, DEL and every non-ASCII byte.
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
                | b'?'
                | b'['
                | b']'
        )
}

const fn is_field_value_fn(b: u8) -> bool {
    // field-value bytes: VCHAR / obs-text / SP / HTAB (RFC 9110 §5.5). CTLs (incl. NUL, CR, LF)
    // and DEL are rejected.
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

const fn is_reg_name_fn(b: u8) -> bool {
    // reg-name = *( unreserved / pct-encoded / sub-delims ) without "," (RFC 3986 §3.2.2); a
    // comma in Host is refused because it reads as a list to some recipients.
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b';'
                | b'='
        )
}

#[expect(
    clippy::indexing_slicing,
    reason = "const evaluation: an out-of-range index fails the build"
)]
static TCHAR: [bool; 256] = table!(is_tchar_fn);
#[expect(
    clippy::indexing_slicing,
    reason = "const evaluation: an out-of-range index fails the build"
)]
static URI: [bool; 256] = table!(is_uri_fn);
#[expect(
    clippy::indexing_slicing,
    reason = "const evaluation: an out-of-range index fails the build"
)]
static FIELD_VALUE: [bool; 256] = table!(is_field_value_fn);
#[expect(
    clippy::indexing_slicing,
    reason = "const evaluation: an out-of-range index fails the build"
)]
static REG_NAME: [bool; 256] = table!(is_reg_name_fn);

/// `tchar` (RFC 9110 §5.6.2): bytes allowed in methods, field names and transfer-codings.
#[inline(always)]
#[expect(
    clippy::indexing_slicing,
    reason = "a u8 always indexes a 256-entry table"
)]
pub fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

/// Bytes allowed in a request-target (RFC 3986 URI characters, no fragment).
#[inline(always)]
#[expect(
    clippy::indexing_slicing,
    reason = "a u8 always indexes a 256-entry table"
)]
pub fn is_uri(b: u8) -> bool {
    URI[b as usize]
}

/// Bytes allowed inside a field value: VCHAR, obs-text, SP, HTAB.
#[inline(always)]
#[expect(
    clippy::indexing_slicing,
    reason = "a u8 always indexes a 256-entry table"
)]
pub fn is_field_value(b: u8) -> bool {
    FIELD_VALUE[b as usize]
}

/// Bytes allowed in a host name (reg-name without ",").
#[inline(always)]
#[expect(
    clippy::indexing_slicing,
    reason = "a u8 always indexes a 256-entry table"
)]
pub fn is_reg_name(b: u8) -> bool {
    REG_NAME[b as usize]
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `x` that is an ASCII letter, digit or `-` (the bytes of almost
/// every field name). Bytes >= 0x80 are never flagged.
#[inline(always)]
fn alnum_dash(x: u64) -> u64 {
    let low = x & !HIGH;
    let folded = low | (ONES * 0x20); // fold case: only A..Z and a..z land in 0x61..=0x7a
    let ge = |v: u64, lo: u64| (v + ONES * (0x80 - lo)) & HIGH; // byte >= lo
    let gt = |v: u64, hi: u64| (v + ONES * (0x7f - hi)) & HIGH; // byte > hi
    let letters = ge(folded, 0x61) & !gt(folded, 0x7a);
    let digits = ge(low, 0x30) & !gt(low, 0x39);
    // exact per-byte "equals 0x2d": no borrow can cross bytes in this form
    let d = x ^ (ONES * 0x2d);
    let dash = !(((d & !HIGH) + !HIGH) | d) & HIGH;
    (letters | digits | dash) & !x & HIGH
}

/// Index of the first byte of `s` that is not a `tchar`, if any. Eight bytes per step while
/// they are letters, digits or dashes; a byte outside that fast set is looked up in the table.
#[inline]
pub fn find_non_tchar(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(chunk) = s.get(i..i + 8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let fast = alnum_dash(u64::from_le_bytes(word));
        if fast == HIGH {
            i += 8;
            continue;
        }
        let j = ((!fast & HIGH).trailing_zeros() / 8) as usize;
        match s.get(i + j) {
            Some(&b) if is_tchar(b) => i += j + 1,
            _ => return Some(i + j),
        }
    }
    let rest = s.get(i..).unwrap_or_default();
    rest.iter().position(|&b| !is_tchar(b)).map(|p| i + p)
}

/// Index of the first byte of `s` that may not appear in a field value, if any. Sixteen bytes
/// per step with SSE2 on x86_64 (eight with SWAR elsewhere); the lowest flagged byte is exact,
/// and an allowed HTAB there is stepped over.
#[inline]
pub fn find_non_field_value(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(flags) = crate::simd::ctl_or_del_mask(s.get(i..).unwrap_or_default()) {
        if flags == 0 {
            i += crate::simd::WIDTH;
            continue;
        }
        let j = flags.trailing_zeros() as usize;
        match s.get(i + j) {
            Some(&b) if is_field_value(b) => i += j + 1,
            _ => return Some(i + j),
        }
    }
    let rest = s.get(i..).unwrap_or_default();
    rest.iter().position(|&b| !is_field_value(b)).map(|p| i + p)
}

/// `OWS` bytes (RFC 9110 §5.6.3).
#[inline(always)]
pub fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Trims leading and trailing OWS.
pub fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if is_ows(*first) {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if is_ows(*last) {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Validates `host [":" port]` as used in Host and absolute-form authorities: a reg-name or
/// IPv4 address, or an IPv6 literal in brackets, then an optional numeric port. Empty is invalid.
pub fn is_valid_host(v: &[u8]) -> bool {
    let (host, port) = if let Some(rest) = v.strip_prefix(b"[") {
        let Some(close) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let (inside, after) = rest.split_at(close);
        if inside.is_empty()
            || !inside
                .iter()
                .all(|b| b.is_ascii_hexdigit() || *b == b':' || *b == b'.')
        {
            return false;
        }
        let after = after.get(1..).unwrap_or_default();
        match after {
            [] => return true,
            [b':', port @ ..] => (&b"x"[..], port),
            _ => return false,
        }
    } else {
        match v.iter().rposition(|&b| b == b':') {
            Some(i) => (
                v.get(..i).unwrap_or_default(),
                v.get(i + 1..).unwrap_or_default(),
            ),
            None => (v, &b""[..]),
        }
    };
    if host.is_empty() || !host.iter().all(|b| is_reg_name(*b)) {
        return false;
    }
    // An empty port after ":" is allowed by RFC 3986 (`port = *DIGIT`); more than 5 digits is not
    // a port.
    port.len() <= 5 && port.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tchar_matches_rfc_list() {
        let specials = b"!#$%&'*+-.^_`|~";
        for b in 0u8..=255 {
            let want = b.is_ascii_alphanumeric() || specials.contains(&b);
            assert_eq!(is_tchar(b), want, "byte {b:#x}");
        }
    }

    #[test]
    fn field_value_rejects_ctls_but_not_obs_text() {
        assert!(is_field_value(b'\t'));
        assert!(is_field_value(b' '));
        assert!(is_field_value(0x80));
        assert!(is_field_value(0xff));
        for b in [0u8, 7, 8, 0x0b, 0x0c, b'\r', b'\n', 0x7f] {
            assert!(!is_field_value(b), "{b:#x}");
        }
    }

    #[test]
    fn host_values() {
        for ok in [
            &b"example.com"[..],
            b"example.com:8080",
            b"127.0.0.1:9",
            b"[::1]",
            b"[::1]:80",
            b"a",
        ] {
            assert!(is_valid_host(ok), "{}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b""[..],
            b"user@example.com",
            b"example.com/path",
            b"a, b",
            b"a b",
            b"[::1",
            b"[zz]",
            b"example.com:123456",
            b"example.com:8a",
            b":80",
            b"[::1]x",
        ] {
            assert!(!is_valid_host(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn swar_scan_agrees_with_the_table() {
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for len in 0..40 {
            for bad_at in 0..=len {
                for bad in [0u8, 7, b'\r', b'\n', 0x1f, 0x7f] {
                    let mut v: Vec<u8> = (0..len).map(|i| b"ab\tc \xff\x80~"[i % 8]).collect();
                    if bad_at < len {
                        v[bad_at] = bad;
                    }
                    cases.push(v);
                }
            }
        }
        for v in cases {
            assert_eq!(
                find_non_field_value(&v),
                v.iter().position(|&b| !is_field_value(b)),
                "{v:?}"
            );
        }
    }

    #[test]
    fn swar_tchar_scan_agrees_with_the_table() {
        let alphabet: Vec<u8> = (0u8..=255).collect();
        for len in 0..24 {
            for stop_at in 0..=len {
                for &bad in &alphabet {
                    let mut v: Vec<u8> = (0..len).map(|i| b"Content-Type_X9z!"[i % 17]).collect();
                    if stop_at < len {
                        v[stop_at] = bad;
                    }
                    let want = v.iter().position(|&b| !is_tchar(b));
                    assert_eq!(find_non_tchar(&v), want, "{v:?}");
                }
            }
        }
    }

    #[test]
    fn trims_ows() {
        assert_eq!(trim_ows(b" \t a b\t "), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
    }
}
