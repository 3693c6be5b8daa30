//! Differential test against httparse: on every valid corpus request both parsers agree on the
//! method, target, version, head length and every field name and value.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod common;

use common::{corpus, parse_head};
use proto::{Status, Version};

fn trim(v: &[u8]) -> &[u8] {
    let s = v
        .iter()
        .position(|b| !b" \t".contains(b))
        .unwrap_or(v.len());
    let e = v
        .iter()
        .rposition(|b| !b" \t".contains(b))
        .map_or(s, |i| i + 1);
    &v[s..e.max(s)]
}

#[test]
fn agrees_with_httparse_on_the_corpus() {
    for (name, bytes) in corpus() {
        let (ours, head) = parse_head(&bytes);
        let Ok(Status::Complete(n)) = ours else {
            panic!("{name}: {ours:?}")
        };
        let mut hdrs = [httparse::EMPTY_HEADER; 100];
        let mut theirs = httparse::Request::new(&mut hdrs);
        let Ok(httparse::Status::Complete(m)) = theirs.parse(&bytes) else {
            panic!("{name}: httparse")
        };
        assert_eq!(n, m, "{name}: head length");
        assert_eq!(
            Some(head.method_span.get(&bytes)),
            theirs.method.map(str::as_bytes),
            "{name}"
        );
        assert_eq!(
            Some(head.target.get(&bytes)),
            theirs.path.map(str::as_bytes),
            "{name}"
        );
        let v = match head.version {
            Version::Http10 => 0,
            Version::Http11 => 1,
        };
        assert_eq!(Some(v), theirs.version, "{name}");
        assert_eq!(head.fields.len(), theirs.headers.len(), "{name}");
        for (f, h) in head.fields.iter().zip(theirs.headers.iter()) {
            assert_eq!(f.name.get(&bytes), h.name.as_bytes(), "{name}");
            assert_eq!(f.value.get(&bytes), trim(h.value), "{name}: {}", h.name);
        }
    }
}

#[test]
fn httparse_accepts_nothing_we_call_complete_differently() {
    // Rows both must reject, so our strictness never lets through what the reference refuses.
    let rejected: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Test : v\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nBad[Name: v\r\n\r\n",
        b"GET /\x00x HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
    ];
    for bytes in rejected {
        let mut hdrs = [httparse::EMPTY_HEADER; 16];
        let mut theirs = httparse::Request::new(&mut hdrs);
        assert!(
            theirs.parse(bytes).is_err(),
            "httparse accepted {:?}",
            String::from_utf8_lossy(bytes)
        );
        assert!(parse_head(bytes).0.is_err());
    }
}
