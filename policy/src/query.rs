//! Reading one parameter out of the request-target's query and removing it from what is
//! forwarded (credentials in query strings must not reach the upstream or its logs).

use proto::{Repeated, RequestHead};

use crate::exchange::Edits;

/// The value of the one `name=value` in the query (percent-decoded), and `edits.target` set
/// to the target without it. `Ok(None)` when absent; `Err(Repeated)` when it appears more than
/// once (which copy counts would depend on who reads it).
pub fn take_param(
    head: &RequestHead,
    buf: &[u8],
    name: &[u8],
    edits: &mut Edits,
) -> Result<Option<Vec<u8>>, Repeated> {
    let current: &[u8] = match &edits.target {
        Some(t) => t,
        None => head.path(buf),
    };
    let Some(q) = current.iter().position(|&b| b == b'?') else {
        return Ok(None);
    };
    let (path, query) = current.split_at(q);
    let query = query.get(1..).unwrap_or_default();
    let mut value = None;
    let mut kept: Vec<&[u8]> = Vec::new();
    for pair in query.split(|&b| b == b'&') {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (
                pair.get(..i).unwrap_or_default(),
                pair.get(i + 1..).unwrap_or_default(),
            ),
            None => (pair, &b""[..]),
        };
        if k == name {
            if value.is_some() {
                return Err(Repeated);
            }
            value = Some(percent_decode(v));
        } else if !pair.is_empty() {
            kept.push(pair);
        }
    }
    if value.is_none() {
        return Ok(None);
    }
    let mut target = path.to_vec();
    if !kept.is_empty() {
        target.push(b'?');
        target.extend_from_slice(&kept.join(&b'&'));
    }
    edits.target = Some(target);
    Ok(value)
}

/// `%XX` → byte and `+` → space; a malformed escape is kept as written.
pub fn percent_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while let Some(&b) = v.get(i) {
        let hex = |j: usize| v.get(j).and_then(|c| (*c as char).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(target: &str, name: &str) -> (Result<Option<String>, Repeated>, Option<String>) {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        let mut head = RequestHead::with_capacity(4);
        if let Err(e) = proto::parse_request(raw.as_bytes(), &mut head, &proto::Limits::default()) {
            panic!("{raw:?}: {e:?}");
        }
        let mut edits = Edits::default();
        let v = take_param(&head, raw.as_bytes(), name.as_bytes(), &mut edits);
        (
            v.map(|v| v.map(|v| String::from_utf8_lossy(&v).into_owned())),
            edits
                .target
                .map(|t| String::from_utf8_lossy(&t).into_owned()),
        )
    }

    #[test]
    fn takes_and_strips() {
        assert_eq!(
            take("/a?key=s%3Dx&b=1", "key"),
            (Ok(Some("s=x".into())), Some("/a?b=1".into()))
        );
        assert_eq!(
            take("/a?key=k", "key"),
            (Ok(Some("k".into())), Some("/a".into()))
        );
        assert_eq!(take("/a?keys=k", "key"), (Ok(None), None));
        assert_eq!(take("/a", "key"), (Ok(None), None));
        // issue 9: a credential given twice is ambiguous, even twice the same
        for twice in ["/a?b=1&key=k&key=again", "/a?key=k&key=k", "/a?key=&key=k"] {
            assert_eq!(take(twice, "key"), (Err(Repeated), None), "{twice}");
        }
    }
}
