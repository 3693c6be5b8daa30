//! Shared test inputs: the request corpus in `tests/corpus/*.http` (also used by `bench`).
#![allow(dead_code)]

use proto::{Limits, ParseError, RequestHead, Status, parse_request};

/// Every corpus request: (file stem, bytes).
pub fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "http"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Parses `bytes` with default limits.
pub fn parse(bytes: &[u8]) -> Result<Status, ParseError> {
    let mut head = RequestHead::with_capacity(100);
    parse_request(bytes, &mut head, &Limits::default())
}

/// Parses `bytes` with default limits, returning the head too.
pub fn parse_head(bytes: &[u8]) -> (Result<Status, ParseError>, RequestHead) {
    let mut head = RequestHead::with_capacity(100);
    let r = parse_request(bytes, &mut head, &Limits::default());
    (r, head)
}

/// Every prefix of a rejected request is either still `Partial` or already the same error,
/// and the whole request is that error: no split point lets a bad request through.
pub fn assert_rejected_at_every_split(name: &str, bytes: &[u8], want: ParseError) {
    assert_eq!(parse(bytes), Err(want), "{name}");
    for cut in 1..bytes.len() {
        let got = parse(&bytes[..cut]);
        assert!(
            got == Ok(Status::Partial) || got == Err(want),
            "{name}: cut at {cut} gave {got:?}, want Partial or {want:?}"
        );
    }
}
