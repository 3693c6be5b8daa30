//! Message body length (RFC 9112 §6) and the other facts the proxy needs from a head: Host,
//! Connection options, Expect. Every ambiguous shape a request smuggler relies on is an error.

use crate::chars::{is_tchar, is_valid_host, trim_ows};
use crate::error::ParseError;
use crate::head::{
    ConnectionOptions, Field, FieldKind, Framing, Method, RequestHead, ResponseHead, Version,
};

/// Fills `head.framing`, `head.host`, `head.connection` and `head.expect_continue`, rejecting
/// requests whose framing or routing is ambiguous.
pub(crate) fn analyze_request(head: &mut RequestHead, buf: &[u8]) -> Result<(), ParseError> {
    let mut host = None;
    let mut hosts = 0u32;
    let mut content_length: Option<u64> = None;
    let mut te = TeState::default();
    let mut connection = ConnectionOptions::default();
    let mut expect_continue = false;
    for f in &head.fields {
        let v = || f.value.get(buf);
        match f.kind {
            FieldKind::Other => {}
            FieldKind::Host => {
                hosts += 1;
                host = Some(f.value);
            }
            FieldKind::ContentLength => {
                let n = parse_content_length(v())?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(ParseError::ContentLength);
                }
                content_length = Some(n);
            }
            FieldKind::TransferEncoding => te.add(v())?,
            FieldKind::Connection => connection_tokens(v(), &mut connection)?,
            FieldKind::Expect => {
                if v().eq_ignore_ascii_case(b"100-continue") {
                    expect_continue = true;
                } else {
                    return Err(ParseError::Expectation);
                }
            }
            _ => {}
        }
    }
    // RFC 9112 §3.2: a client MUST send Host in HTTP/1.1; a server MUST answer 400 to a request
    // without one or with more than one.
    if hosts > 1 || (hosts == 0 && head.version == Version::Http11) {
        return Err(ParseError::Host);
    }
    if let Some(h) = host
        && !is_valid_host(h.get(buf))
    {
        return Err(ParseError::HostValue);
    }
    // RFC 9110 §9.3.6: a CONNECT request has no content (its bytes after the head are the
    // tunnel's); one framed with a body is refused rather than guessed at
    if head.method == Method::Connect {
        if te.seen {
            return Err(ParseError::TransferEncoding);
        }
        if content_length.is_some_and(|n| n > 0) {
            return Err(ParseError::ContentLength);
        }
    }
    head.framing = if te.seen {
        // RFC 9112 §6.1: TE in HTTP/1.0 is faulty framing; TE with CL is a smuggling vector
        // and a server MAY reject it — a proxy must (§6.3 bullet 3).
        if head.version == Version::Http10 {
            return Err(ParseError::TransferEncodingHttp10);
        }
        if content_length.is_some() {
            return Err(ParseError::ContentLengthWithTransferEncoding);
        }
        // §6.3: a request whose final coding is not chunked cannot be framed: 400.
        if !te.chunked_last {
            return Err(ParseError::TransferEncoding);
        }
        Framing::Chunked
    } else {
        Framing::Length(content_length.unwrap_or(0))
    };
    head.host = host;
    head.connection = connection;
    head.expect_continue = expect_continue && head.version == Version::Http11;
    Ok(())
}

/// Fills the framing facts of a response head. Tolerates what RFC 9112 §6.3 resolves for
/// responses (TE overrides CL) but refuses unparseable Content-Length.
pub(crate) fn analyze_response(head: &mut ResponseHead, buf: &[u8]) -> Result<(), ParseError> {
    let mut content_length: Option<u64> = None;
    let mut te = TeState::default();
    let mut connection = ConnectionOptions::default();
    for f in &head.fields {
        let v = f.value.get(buf);
        match f.kind {
            FieldKind::ContentLength => {
                let n = parse_content_length(v)?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(ParseError::ContentLength);
                }
                content_length = Some(n);
            }
            FieldKind::TransferEncoding => te.add_lenient(v),
            FieldKind::Connection => connection_tokens(v, &mut connection)?,
            _ => {}
        }
    }
    head.content_length = content_length;
    head.transfer_encoding = te.seen;
    head.chunked = te.seen && te.chunked_last;
    head.other_codings = te.other;
    head.connection = connection;
    Ok(())
}

/// The body framing of a response to a request with `method` (RFC 9112 §6.3).
pub fn response_framing(method: Method, head: &ResponseHead) -> Framing {
    if method == Method::Head || head.status < 200 || head.status == 204 || head.status == 304 {
        Framing::Length(0)
    } else if head.transfer_encoding {
        if head.chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else if let Some(n) = head.content_length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    }
}

/// `Content-Length = 1*DIGIT`, optionally as a list of identical values (RFC 9110 §8.6 lets a
/// recipient accept `5, 5`). Signs, spaces inside, hex, empty values and values over
/// 2^63 − 1 are errors.
fn parse_content_length(v: &[u8]) -> Result<u64, ParseError> {
    let mut result: Option<u64> = None;
    for part in v.split(|&b| b == b',') {
        let part = trim_ows(part);
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return Err(ParseError::ContentLength);
        }
        let n = part.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        // beyond a signed 64-bit length: no real body is that large, and peers that keep
        // lengths in an i64 would see a negative one
        if n > i64::MAX as u64 {
            return Err(ParseError::ContentLength);
        }
        if result.is_some_and(|r| r != n) {
            return Err(ParseError::ContentLength);
        }
        result = Some(n);
    }
    result.ok_or(ParseError::ContentLength)
}

#[derive(Default)]
struct TeState {
    seen: bool,
    chunked_last: bool,
    other: bool,
}

impl TeState {
    /// Strict request rule: the only coding we accept is one `chunked`, last. Empty list
    /// elements, parameters and `chunked` twice are malformed (400); other codings are not
    /// implemented (501).
    fn add(&mut self, v: &[u8]) -> Result<(), ParseError> {
        for part in v.split(|&b| b == b',') {
            let coding = trim_ows(part);
            if coding.is_empty() || !coding.iter().all(|&b| is_tchar(b)) {
                return Err(ParseError::TransferEncoding);
            }
            if self.chunked_last {
                // Something after chunked (or chunked twice): chunked is not last.
                return Err(ParseError::TransferEncoding);
            }
            if coding.eq_ignore_ascii_case(b"chunked") {
                self.chunked_last = true;
            } else {
                return Err(ParseError::UnknownTransferCoding);
            }
        }
        self.seen = true;
        Ok(())
    }

    /// Response rule: only whether chunked is the final coding matters.
    fn add_lenient(&mut self, v: &[u8]) {
        self.seen = true;
        self.other |= v
            .split(|&b| b == b',')
            .map(trim_ows)
            .any(|c| !c.is_empty() && !c.eq_ignore_ascii_case(b"chunked"));
        if let Some(last) = v
            .rsplit(|&b| b == b',')
            .map(trim_ows)
            .find(|p| !p.is_empty())
        {
            self.chunked_last = last.eq_ignore_ascii_case(b"chunked");
        }
    }
}

fn connection_tokens(v: &[u8], opts: &mut ConnectionOptions) -> Result<(), ParseError> {
    for part in v.split(|&b| b == b',') {
        let t = trim_ows(part);
        if t.is_empty() {
            continue;
        }
        if !t.iter().all(|&b| is_tchar(b)) {
            return Err(ParseError::FieldValue);
        }
        if t.eq_ignore_ascii_case(b"close") {
            opts.close = true;
        } else if t.eq_ignore_ascii_case(b"keep-alive") {
            opts.keep_alive = true;
        } else if t.eq_ignore_ascii_case(b"upgrade") {
            opts.upgrade = true;
        } else {
            opts.names_fields = true;
        }
    }
    Ok(())
}

/// Whether `field` is named by a Connection option of this head (and so is hop-by-hop).
pub fn named_by_connection(fields: &[Field], buf: &[u8], field: &Field) -> bool {
    let name = field.name.get(buf);
    fields
        .iter()
        .filter(|f| f.kind == FieldKind::Connection)
        .any(|c| {
            c.value
                .get(buf)
                .split(|&b| b == b',')
                .any(|t| trim_ows(t).eq_ignore_ascii_case(name))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_values() {
        assert_eq!(parse_content_length(b"0"), Ok(0));
        assert_eq!(parse_content_length(b"005"), Ok(5));
        assert_eq!(parse_content_length(b"5, 5"), Ok(5));
        assert!(parse_content_length(b"99999999999999999999").is_err());
        // the largest signed 64-bit length, and one more
        assert_eq!(
            parse_content_length(b"9223372036854775807"),
            Ok(9_223_372_036_854_775_807)
        );
        for huge in [
            &b"9223372036854775808"[..],
            b"9999999999999999999",
            b"18446744073709551615",
            b"18446744073709551616",
        ] {
            assert_eq!(parse_content_length(huge), Err(ParseError::ContentLength));
        }
        for bad in [
            &b""[..],
            b"+5",
            b"-1",
            b"0x5",
            b"1 0",
            b"5, 10",
            b"1_0",
            b"abc",
            b",5",
            b"5,",
        ] {
            assert_eq!(
                parse_content_length(bad),
                Err(ParseError::ContentLength),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn transfer_encoding_values() {
        let run = |vs: &[&[u8]]| {
            let mut te = TeState::default();
            for v in vs {
                te.add(v)?;
            }
            Ok::<bool, ParseError>(te.chunked_last)
        };
        assert_eq!(run(&[b"chunked"]), Ok(true));
        assert_eq!(run(&[b"Chunked"]), Ok(true));
        assert_eq!(
            run(&[b"chunked, chunked"]),
            Err(ParseError::TransferEncoding)
        );
        assert_eq!(
            run(&[b"chunked", b"chunked"]),
            Err(ParseError::TransferEncoding)
        );
        assert_eq!(
            run(&[b"gzip, chunked"]),
            Err(ParseError::UnknownTransferCoding)
        );
        assert_eq!(
            run(&[b"chunked", b"identity"]),
            Err(ParseError::TransferEncoding)
        );
        assert_eq!(run(&[b"xchunked"]), Err(ParseError::UnknownTransferCoding));
        assert_eq!(run(&[b", chunked"]), Err(ParseError::TransferEncoding));
        assert_eq!(run(&[b"chunked,"]), Err(ParseError::TransferEncoding));
        assert_eq!(run(&[b""]), Err(ParseError::TransferEncoding));
        assert_eq!(run(&[b"chunked;a=b"]), Err(ParseError::TransferEncoding));
    }
}
