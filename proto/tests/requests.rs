//! Request-head rules, one table row per rule: the bytes, and the verdict RFC 9112 asks for.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod common;

use common::{parse, parse_head};
use proto::{
    Framing, Limits, Method, ParseError, RequestHead, Status, Target, Version, parse_request,
};

fn req(lines: &str) -> Vec<u8> {
    lines.as_bytes().to_vec()
}

#[test]
fn rejects_each_malformation_with_its_error() {
    use ParseError::*;
    let table: &[(&str, &[u8], ParseError)] = &[
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX: v\r\n folded\r\n\r\n", ObsFold),
        ("space before colon", b"GET / HTTP/1.1\r\nHost: a\r\nX-Test : v\r\n\r\n", SpaceBeforeColon),
        ("tab before colon", b"GET / HTTP/1.1\r\nHost: a\r\nX-Test\t: v\r\n\r\n", SpaceBeforeColon),
        ("invalid name char", b"GET / HTTP/1.1\r\nHost: a\r\nBad[Name: v\r\n\r\n", FieldName),
        ("empty name", b"GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", FieldName),
        ("no colon", b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", FieldName),
        ("non-ascii name", b"GET / HTTP/1.1\r\nHost: a\r\nX-T\xc3\xabst: v\r\n\r\n", FieldName),
        ("bare CR in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: va\rlue\r\n\r\n", BareCr),
        ("bare CR line end", b"GET / HTTP/1.1\rHost: a\r\n\r\n", BareCr),
        ("bare LF in fields", b"GET / HTTP/1.1\r\nHost: a\nX: v\r\n\r\n", BareLf),
        ("bare LF request-line", b"GET / HTTP/1.1\nHost: a\r\n\r\n", BareLf),
        ("NUL in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", FieldValue),
        ("BEL in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x07b\r\n\r\n", FieldValue),
        ("DEL in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", FieldValue),
        ("NUL in target", b"GET /\x00x HTTP/1.1\r\nHost: a\r\n\r\n", Target),
        ("space in target", b"GET /pa th HTTP/1.1\r\nHost: a\r\n\r\n", Version),
        ("fragment", b"GET /p#f HTTP/1.1\r\nHost: a\r\n\r\n", Target),
        ("backslash", b"GET /p\\f HTTP/1.1\r\nHost: a\r\n\r\n", Target),
        ("non-ascii target", b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", Target),
        ("relative target", b"GET index.html HTTP/1.1\r\nHost: a\r\n\r\n", Target),
        ("asterisk with GET", b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", Target),
        ("missing target", b"GET HTTP/1.1\r\nHost: a\r\n\r\n", RequestLine),
        ("double space", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", RequestLine),
        ("tab separator", b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", RequestLine),
        ("HTTP/0.9", b"GET /\r\n", RequestLine),
        ("leading space", b"   \r\n\r\n", RequestLine),
        ("binary method", b"9\x0c\x8c}rG4", Method),
        ("lower-case version", b"GET / http/1.1\r\nHost: a\r\n\r\n", Version),
        ("missing minor", b"GET / HTTP/1\r\nHost: a\r\n\r\n", Version),
        ("leading zeros", b"GET / HTTP/01.01\r\nHost: a\r\n\r\n", Version),
        ("space in version", b"GET / HTTP/ 1.1\r\nHost: a\r\n\r\n", Version),
        ("version 9.9", b"GET / HTTP/9.9\r\nHost: a\r\n\r\n", UnsupportedVersion),
        ("version 2.0", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", UnsupportedVersion),
        ("version 1.2", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", UnsupportedVersion),
        ("CONNECT", b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", MethodNotImplemented),
        ("missing host", b"GET / HTTP/1.1\r\n\r\n", Host),
        ("duplicate host", b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", Host),
        ("host userinfo", b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", HostValue),
        ("host path", b"GET / HTTP/1.1\r\nHost: a/p\r\n\r\n", HostValue),
        ("host list", b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", HostValue),
        ("empty host", b"GET / HTTP/1.1\r\nHost: \r\n\r\n", HostValue),
        ("absolute userinfo", b"GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", HostValue),
        ("CL non-numeric", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", ContentLength),
        ("CL plus", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", ContentLength),
        ("CL empty", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", ContentLength),
        ("CL overflow", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", ContentLength),
        ("CL differ", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 10\r\n\r\n", ContentLength),
        ("CL list differ", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 10\r\n\r\n", ContentLength),
        ("TE gzip", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", UnknownTransferCoding),
        ("TE chunked not last", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", TransferEncoding),
        ("TE and CL", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", ContentLengthWithTransferEncoding),
        ("TE in 1.0", b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", TransferEncodingHttp10),
        ("expect other", b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", Expectation),
    ];
    for (name, bytes, want) in table {
        common::assert_rejected_at_every_split(name, bytes, *want);
    }
}

#[test]
fn enforces_configured_limits() {
    let limits = Limits {
        max_request_line: 64,
        max_head: 256,
        max_fields: 4,
        allow_connect: false,
    };
    let mut head = RequestHead::with_capacity(4);
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(100));
    assert_eq!(
        parse_request(long_line.as_bytes(), &mut head, &limits),
        Err(ParseError::RequestLineTooLong)
    );
    // still partial (no CRLF yet) but already over the limit
    let partial_line = format!("GET /{}", "a".repeat(100));
    assert_eq!(
        parse_request(partial_line.as_bytes(), &mut head, &limits),
        Err(ParseError::RequestLineTooLong)
    );
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "b".repeat(300)
    );
    assert_eq!(
        parse_request(big.as_bytes(), &mut head, &limits),
        Err(ParseError::HeadTooLarge)
    );
    let partial_big = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "b".repeat(300));
    assert_eq!(
        parse_request(partial_big.as_bytes(), &mut head, &limits),
        Err(ParseError::HeadTooLarge)
    );
    let many = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    assert_eq!(
        parse_request(many.as_bytes(), &mut head, &limits),
        Err(ParseError::TooManyFields)
    );
    let ok = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(
        parse_request(ok.as_bytes(), &mut head, &limits),
        Ok(Status::Complete(ok.len()))
    );
}

#[test]
fn parses_fields_and_facts() {
    let bytes = req(
        "POST /a/b?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nContent-Length: 005\r\nConnection: keep-alive, X-Foo\r\nExpect: 100-continue\r\nX-Foo: bar\r\n\r\nhello",
    );
    let (r, head) = parse_head(&bytes);
    assert_eq!(r, Ok(Status::Complete(bytes.len() - 5)));
    assert_eq!(head.method, Method::Post);
    assert_eq!(head.path(&bytes), b"/a/b?x=1");
    assert_eq!(head.path_only(&bytes), b"/a/b");
    assert_eq!(head.version, Version::Http11);
    assert_eq!(head.framing, Framing::Length(5));
    assert_eq!(head.authority(&bytes), Some(&b"example.com:8080"[..]));
    assert!(head.connection.keep_alive && head.connection.names_fields);
    assert!(head.expect_continue);
    assert_eq!(head.fields.len(), 5);
}

#[test]
fn accepts_lenient_but_unambiguous_shapes() {
    let ok: &[&[u8]] = &[
        b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"get / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\t5 \r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: D\xc3\xbcsseldorf \xff\r\n\r\n",
        b"GET /path%00.html HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
    ];
    for bytes in ok {
        assert!(
            matches!(parse(bytes), Ok(Status::Complete(_))),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn absolute_form_exposes_authority_and_path() {
    let bytes = b"GET http://other.example:81/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n";
    let (r, head) = parse_head(bytes);
    assert!(matches!(r, Ok(Status::Complete(_))));
    assert!(matches!(head.target_form, Target::Absolute { .. }));
    assert_eq!(head.authority(bytes), Some(&b"other.example:81"[..]));
    assert_eq!(head.path(bytes), b"/x?y");
    let bare = b"GET http://a HTTP/1.1\r\nHost: a\r\n\r\n";
    let (_, head) = parse_head(bare);
    assert_eq!(head.path(bare), b"/");
}

#[test]
fn connect_is_parsed_only_where_allowed_and_only_in_authority_form() {
    let allow = Limits {
        allow_connect: true,
        ..Limits::default()
    };
    let ok = b"CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n";
    let mut head = RequestHead::with_capacity(8);
    assert!(matches!(
        parse_request(ok, &mut head, &allow),
        Ok(Status::Complete(_))
    ));
    assert_eq!(head.target_form, Target::Authority);
    assert_eq!(head.authority(ok), Some(&b"db.internal:5432"[..]));
    assert_eq!(head.framing, Framing::Length(0));
    let refused = [
        (
            &b"CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            ParseError::Target,
        ),
        (b"CONNECT a HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::Target),
        (
            b"CONNECT a:http HTTP/1.1\r\nHost: a\r\n\r\n",
            ParseError::Target,
        ),
        (
            b"CONNECT http://a:1/ HTTP/1.1\r\nHost: a\r\n\r\n",
            ParseError::Target,
        ),
        (
            b"CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\nContent-Length: 2\r\n\r\nab",
            ParseError::ContentLength,
        ),
        (
            b"CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\nTransfer-Encoding: chunked\r\n\r\n",
            ParseError::TransferEncoding,
        ),
    ];
    for (bytes, want) in refused {
        assert_eq!(
            parse_request(bytes, &mut head, &allow),
            Err(want),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
    // not allowed: 501 whatever its form
    assert_eq!(
        parse_request(ok, &mut head, &Limits::default()),
        Err(ParseError::MethodNotImplemented)
    );
}

#[test]
fn partial_until_complete_and_early_failure() {
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nHost: a\r\nX-Test: value"),
        Ok(Status::Partial)
    );
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nHost: a\r\n\r"),
        Ok(Status::Partial)
    );
    assert_eq!(parse(b"GE"), Ok(Status::Partial));
    assert_eq!(parse(b"GET / HT"), Ok(Status::Partial));
    assert_eq!(parse(b"GET / HX"), Err(ParseError::Version));
    assert_eq!(parse(b"GET /\x01"), Err(ParseError::Target));
}
