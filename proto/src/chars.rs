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

/// A `token` (RFC 9110 §5.6.2): one or more `tchar`s — methods, field names, codings.
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
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
        // One branch-free pass for the usual `name` form; the port split only when a colon is
        // there.
        let (ok, colon) = v.iter().fold((true, false), |(ok, colon), &b| {
            (ok & is_reg_name(b), colon | (b == b':'))
        });
        if ok {
            return !v.is_empty();
        }
        match v.iter().rposition(|&b| b == b':').filter(|_| colon) {
            Some(i) => (
                v.get(..i).unwrap_or_default(),
                v.get(i + 1..).unwrap_or_default(),
            ),
            None => return false,
        }
    };
    if host.is_empty() || !host.iter().fold(true, |ok, &b| ok & is_reg_name(b)) {
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
    fn trims_ows() {
        assert_eq!(trim_ows(b" \t a b\t "), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
    }
}
