//! Request-smuggling classics: every shape where two parsers could disagree on where a request
//! ends is refused outright.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod common;

use proto::ParseError::*;

#[test]
fn refuses_ambiguous_framing() {
    let table: &[(&str, &[u8], proto::ParseError)] = &[
        ("CL.TE", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", ContentLengthWithTransferEncoding),
        ("TE.CL", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n0\r\n\r\n", ContentLengthWithTransferEncoding),
        ("xchunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", UnknownTransferCoding),
        ("chunked, identity", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", TransferEncoding),
        ("TE split over fields", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n", TransferEncoding),
        ("chunked twice", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", TransferEncoding),
        ("duplicate CL", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 10\r\n\r\n", ContentLength),
        ("obs-fold on TE", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", ObsFold),
        ("space before colon TE", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", SpaceBeforeColon),
        ("space before colon CL", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", SpaceBeforeColon),
        ("TE trailing comma", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n", TransferEncoding),
        ("TE leading comma", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked\r\n\r\n", TransferEncoding),
        ("TE params", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;a=b\r\n\r\n", TransferEncoding),
        ("TE vertical tab", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0bchunked\r\n\r\n", FieldValue),
        ("TE NUL", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x00\r\n\r\n", FieldValue),
        ("TE in HTTP/1.0", b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", TransferEncodingHttp10),
        ("CL hex", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", ContentLength),
        ("CL negative", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", ContentLength),
        ("CL internal space", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 0\r\n\r\n", ContentLength),
        ("CR in name", b"PUT /u HTTP/1.1\r\nHost: a\r\nContent\rLength: 003\r\n\r\n", FieldName),
        ("dummy separator", b"GET / HTTP/1.1\r\nHost: a\r\n\rZGET /evil: HTTP/1.1\r\n\r\n", BareCr),
        ("missing CRLF before body", b"PUT /u HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\rabc", BareCr),
        ("name line folding", b"GET / HTTP/1.1\r\nHost: a\r\nname\r\n : value\r\n\r\n", FieldName),
    ];
    for (name, bytes, want) in table {
        common::assert_rejected_at_every_split(name, bytes, *want);
    }
}
