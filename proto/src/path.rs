//! Path normalisation before routing (RFC 3986 §6.2.2): percent-encoded unreserved bytes
//! decoded, other escapes upper-cased, dot segments removed. Refused: encoded `/`, `\` or NUL
//! (they smuggle separators past routes and upstream path checks), malformed escapes, and any
//! `..` that would climb above the root. Sans-IO; allocates only when the path changes.

/// Why a path was refused (each a 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// `%2F` in the path.
    EncodedSlash,
    /// `%5C` in the path.
    EncodedBackslash,
    /// `%00` in the path.
    EncodedNul,
    /// `%` not followed by two hex digits.
    BadEscape,
    /// `..` above the root.
    AboveRoot,
}

impl PathError {
    /// The problem detail sent to the client.
    pub fn detail(self) -> &'static str {
        match self {
            PathError::EncodedSlash => "the path has an encoded slash (%2F)",
            PathError::EncodedBackslash => "the path has an encoded backslash (%5C)",
            PathError::EncodedNul => "the path has an encoded NUL (%00)",
            PathError::BadEscape => "the path has a malformed percent-escape",
            PathError::AboveRoot => "the path climbs above the root",
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Normalises an origin-form target (`/path?query`; the query is kept as is). `Ok(None)` when
/// it is already normal.
pub fn normalize(target: &[u8]) -> Result<Option<Vec<u8>>, PathError> {
    let (path, query) = match memchr::memchr(b'?', target) {
        Some(i) => target.split_at(i),
        None => (target, &b""[..]),
    };
    // the common case: nothing to decode and no dot segment
    if memchr::memchr(b'%', path).is_none() && memchr::memmem::find(path, b"/.").is_none() {
        return Ok(None);
    }
    let mut decoded = Vec::with_capacity(path.len());
    let mut i = 0;
    while let Some(&b) = path.get(i) {
        if b != b'%' {
            decoded.push(b);
            i += 1;
            continue;
        }
        let (Some(h), Some(l)) = (
            path.get(i + 1).copied().and_then(hex),
            path.get(i + 2).copied().and_then(hex),
        ) else {
            return Err(PathError::BadEscape);
        };
        let v = h * 16 + l;
        match v {
            b'/' => return Err(PathError::EncodedSlash),
            b'\\' => return Err(PathError::EncodedBackslash),
            0 => return Err(PathError::EncodedNul),
            v if is_unreserved(v) => decoded.push(v),
            v => {
                decoded.push(b'%');
                decoded.extend_from_slice(format!("{v:02X}").as_bytes());
            }
        }
        i += 3;
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut trailing_slash = false;
    for seg in decoded.split(|&b| b == b'/').skip(1) {
        trailing_slash = false;
        match seg {
            b"." => trailing_slash = true,
            b".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing_slash = true;
            }
            s => segments.push(s),
        }
    }
    let mut out = Vec::with_capacity(target.len());
    for s in &segments {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if out.is_empty() || trailing_slash {
        out.push(b'/');
    }
    out.extend_from_slice(query);
    Ok((out != target).then_some(out))
}

/// A target split at its first `?`: (path, query without the `?`).
pub fn split_query(target: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b'?', target) {
        Some(i) => (
            target.get(..i).unwrap_or_default(),
            target.get(i + 1..).unwrap_or_default(),
        ),
        None => (target, b""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(t: &str) -> Result<String, PathError> {
        normalize(t.as_bytes()).map(|o| {
            String::from_utf8_lossy(&o.unwrap_or_else(|| t.as_bytes().to_vec())).into_owned()
        })
    }

    #[test]
    fn normal_paths_are_untouched() {
        for t in [
            "/",
            "/a/b",
            "/a/b/",
            "/a.b/c..d/.e",
            "/a?x=/../y",
            "/%C3%A9",
        ] {
            assert_eq!(normalize(t.as_bytes()), Ok(None), "{t}");
        }
    }

    #[test]
    fn decodes_unreserved_and_removes_dot_segments() {
        assert_eq!(n("/%61%2Dz%7e"), Ok("/a-z~".into()));
        assert_eq!(n("/a/%c3%a9"), Ok("/a/%C3%A9".into()));
        assert_eq!(n("/a/./b/../c"), Ok("/a/c".into()));
        assert_eq!(n("/a/b/.."), Ok("/a/".into()));
        assert_eq!(n("/a/b/."), Ok("/a/b/".into()));
        assert_eq!(n("/a/%2e%2E/b?q=1"), Ok("/b?q=1".into()));
        assert_eq!(n("/.."), Err(PathError::AboveRoot));
        assert_eq!(n("/a/../../etc/passwd"), Err(PathError::AboveRoot));
        assert_eq!(
            n("/static/..%2f..%2fetc/passwd"),
            Err(PathError::EncodedSlash)
        );
        assert_eq!(n("/a%5c..%5cb"), Err(PathError::EncodedBackslash));
        assert_eq!(n("/a%00b"), Err(PathError::EncodedNul));
        assert_eq!(n("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(n("/a%4"), Err(PathError::BadEscape));
    }
}
