//! Response heads and their framing (RFC 9112 §4, §6.3): what is accepted, what is refused,
//! and how the body is delimited for each request method and status.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use proto::{
    Framing, Limits, Method, ParseError, ResponseHead, Status, parse_response, response_framing,
};

fn parse(bytes: &[u8]) -> (Result<Status, ParseError>, ResponseHead) {
    let mut head = ResponseHead::with_capacity(16);
    let r = parse_response(bytes, &mut head, &Limits::default());
    (r, head)
}

#[test]
fn accepts_status_lines_with_or_without_reason() {
    for (bytes, status) in [
        (&b"HTTP/1.1 200 OK\r\n\r\n"[..], 200),
        (b"HTTP/1.1 204 \r\n\r\n", 204),
        (b"HTTP/1.1 404\r\n\r\n", 404),
        (b"HTTP/1.0 302 Found Elsewhere\r\nLocation: /x\r\n\r\n", 302),
        (b"HTTP/1.1 599 Custom\r\n\r\n", 599),
    ] {
        let (r, head) = parse(bytes);
        assert_eq!(
            r,
            Ok(Status::Complete(bytes.len())),
            "{}",
            String::from_utf8_lossy(bytes)
        );
        assert_eq!(head.status, status);
    }
}

#[test]
fn refuses_malformed_response_heads() {
    let table: &[(&[u8], ParseError)] = &[
        (b"HTTP/1.1 20 OK\r\n\r\n", ParseError::StatusLine),
        (b"HTTP/1.1 099 X\r\n\r\n", ParseError::StatusLine),
        (b"HTTP/1.1  200 OK\r\n\r\n", ParseError::StatusLine),
        (b"HTTP/1.1 200 O\x00K\r\n\r\n", ParseError::StatusLine),
        (b"http/1.1 200 OK\r\n\r\n", ParseError::StatusLine),
        (b"HTTP/2.0 200 OK\r\n\r\n", ParseError::StatusLine),
        (b"NOT HTTP\r\n\r\n", ParseError::StatusLine),
        (
            b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
            ParseError::ObsFold,
        ),
        (b"HTTP/1.1 200 OK\nX: a\r\n\r\n", ParseError::StatusLine),
        (b"HTTP/1.1 200 OK\r\nX: a\n\r\n", ParseError::BareLf),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            ParseError::ContentLength,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            ParseError::ContentLength,
        ),
    ];
    for (bytes, want) in table {
        assert_eq!(
            parse(bytes).0,
            Err(*want),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn partial_until_the_head_ends() {
    let full = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    for cut in 0..full.len() - 2 {
        assert_eq!(parse(&full[..cut]).0, Ok(Status::Partial), "cut {cut}");
    }
    assert_eq!(parse(full).0, Ok(Status::Complete(full.len() - 2)));
}

#[test]
fn framing_by_method_and_status() {
    let case = |bytes: &[u8], method: Method| {
        let (r, head) = parse(bytes);
        assert!(
            matches!(r, Ok(Status::Complete(_))),
            "{}",
            String::from_utf8_lossy(bytes)
        );
        response_framing(method, &head)
    };
    let cl = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n";
    assert_eq!(case(cl, Method::Get), Framing::Length(7));
    assert_eq!(
        case(cl, Method::Head),
        Framing::Length(0),
        "HEAD: never a body"
    );
    assert_eq!(
        case(
            b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
            Method::Get
        ),
        Framing::Length(0)
    );
    assert_eq!(
        case(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
            Method::Get
        ),
        Framing::Length(0)
    );
    assert_eq!(
        case(b"HTTP/1.1 100 Continue\r\n\r\n", Method::Post),
        Framing::Length(0)
    );
    assert_eq!(
        case(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            Method::Get
        ),
        Framing::Chunked
    );
    assert_eq!(
        case(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 7\r\n\r\n",
            Method::Get
        ),
        Framing::Chunked,
        "TE overrides CL (RFC 9112 §6.3)"
    );
    assert_eq!(
        case(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            Method::Get
        ),
        Framing::UntilClose
    );
    assert_eq!(
        case(b"HTTP/1.1 200 OK\r\n\r\n", Method::Get),
        Framing::UntilClose,
        "no length: until close"
    );
    let (_, head) = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    assert!(head.chunked && head.other_codings);
    let (_, head) = parse(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n");
    assert!(head.keep_alive());
    let (_, head) = parse(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    assert!(!head.keep_alive());
}
