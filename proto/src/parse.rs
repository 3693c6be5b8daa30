//! Request-line, status-line and field-line parsing (RFC 9112 §2–5) into a reusable head;
//! re-entrant after `Partial`, failing as soon as an offending byte arrives.

use crate::chars::{is_field_value, is_ows, is_tchar, is_uri, is_valid_host};
use crate::error::ParseError;
use crate::framing::{analyze_request, analyze_response};
use crate::head::{
    Field, FieldKind, Limits, Method, RequestHead, ResponseHead, Span, Target, Version,
};

/// Result of a parse attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The head is not complete yet: read more and call again with the whole buffer.
    Partial,
    /// The head is complete and valid; it is this many bytes long.
    Complete(usize),
}

/// How many empty lines before a request-line are skipped (RFC 9112 §2.2: "SHOULD ignore at
/// least one"); more is treated as garbage.
const MAX_LEADING_EMPTY_LINES: usize = 8;

/// Parses a request head from the start of `buf` into `head`.
///
/// On `Complete` every field of `head` is set, including framing (`head.framing`), Host,
/// Connection options and Expect; a request that is syntactically valid but ambiguous to frame
/// (smuggling shapes) is an `Err`.
pub fn parse_request(
    buf: &[u8],
    head: &mut RequestHead,
    limits: &Limits,
) -> Result<Status, ParseError> {
    head.fields.clear();
    let mut pos = 0;
    let mut empty_lines = 0;
    loop {
        match buf.get(pos) {
            None => return Ok(Status::Partial),
            Some(b'\r') => match buf.get(pos + 1) {
                None => return Ok(Status::Partial),
                Some(b'\n') if empty_lines < MAX_LEADING_EMPTY_LINES => {
                    pos += 2;
                    empty_lines += 1;
                }
                Some(b'\n') => return Err(ParseError::RequestLine),
                Some(_) => return Err(ParseError::BareCr),
            },
            Some(b'\n') => return Err(ParseError::BareLf),
            Some(_) => break,
        }
    }
    let line_start = pos;
    let Some(line_end) = parse_request_line(buf, pos, head, limits.allow_connect)? else {
        return partial_request_line(buf, line_start, limits);
    };
    if line_end - line_start > limits.max_request_line {
        return Err(ParseError::RequestLineTooLong);
    }
    pos = line_end + 2;
    let Some(end) = parse_fields(buf, pos, &mut head.fields, limits)? else {
        return if buf.len() > limits.max_head {
            Err(ParseError::HeadTooLarge)
        } else {
            Ok(Status::Partial)
        };
    };
    if end > limits.max_head {
        return Err(ParseError::HeadTooLarge);
    }
    head.head_len = end;
    analyze_request(head, buf)?;
    Ok(Status::Complete(end))
}

fn partial_request_line(
    buf: &[u8],
    line_start: usize,
    limits: &Limits,
) -> Result<Status, ParseError> {
    if buf.len() - line_start > limits.max_request_line {
        Err(ParseError::RequestLineTooLong)
    } else {
        Ok(Status::Partial)
    }
}

/// Parses `method SP request-target SP HTTP-version CRLF` starting at `pos`. Returns the offset
/// of the CR, or `None` when more bytes are needed.
fn parse_request_line(
    buf: &[u8],
    pos: usize,
    head: &mut RequestHead,
    allow_connect: bool,
) -> Result<Option<usize>, ParseError> {
    let rest = buf.get(pos..).unwrap_or_default();
    let Some(mlen) = rest.iter().position(|&b| !is_tchar(b)) else {
        return Ok(None);
    };
    if mlen == 0 {
        return Err(if rest.first().is_some_and(|&b| is_ows(b)) {
            ParseError::RequestLine
        } else {
            ParseError::Method
        });
    }
    if rest.get(mlen) != Some(&b' ') {
        return Err(if rest.get(mlen) == Some(&b'\t') {
            ParseError::RequestLine
        } else {
            ParseError::Method
        });
    }
    let method_span = Span::new(pos, pos + mlen);
    let tpos = pos + mlen + 1;
    let rest = buf.get(tpos..).unwrap_or_default();
    let Some(tlen) = find_target_end(rest) else {
        return Ok(None);
    };
    match rest.get(tlen) {
        Some(b' ') if tlen > 0 => {}
        Some(b' ' | b'\t' | b'\r' | b'\n') => return Err(ParseError::RequestLine),
        _ => return Err(ParseError::Target),
    }
    let target = Span::new(tpos, tpos + tlen);
    let vpos = tpos + tlen + 1;
    let rest = buf.get(vpos..).unwrap_or_default();
    let version = match parse_version(rest)? {
        Some(v) => v,
        None => return Ok(None),
    };
    match (rest.get(8), rest.get(9)) {
        (None, _) | (Some(b'\r'), None) => return Ok(None),
        (Some(b'\r'), Some(b'\n')) => {}
        (Some(b'\r'), Some(_)) => return Err(ParseError::BareCr),
        (Some(b'\n'), _) => return Err(ParseError::BareLf),
        (Some(_), _) => return Err(ParseError::Version),
    }
    let method_bytes = method_span.get(buf);
    head.method = Method::from_bytes(method_bytes);
    head.method_span = method_span;
    head.target = target;
    head.version = version;
    if head.method == Method::Connect {
        if !allow_connect {
            return Err(ParseError::MethodNotImplemented);
        }
        // RFC 9112 §3.2.3: authority-form, host and port, nothing else
        let t = target.get(buf);
        let port_ok = |p: &[u8]| !p.is_empty() && p.len() <= 5 && p.iter().all(u8::is_ascii_digit);
        match t.iter().rposition(|&b| b == b':') {
            Some(i) if i > 0 && is_valid_host(t) && t.get(i + 1..).is_some_and(port_ok) => {}
            _ => return Err(ParseError::Target),
        }
        head.target_form = Target::Authority;
        head.path = Span::new(target.end(), target.end());
        return Ok(Some(vpos + 8));
    }
    let (form, path) = classify_target(buf, target, head.method)?;
    head.target_form = form;
    head.path = path;
    Ok(Some(vpos + 8))
}

/// Length of the request-target at the start of `rest`: the index of its first byte that is
/// not a URI character, or `None` if all of `rest` is (wait for more). The usual end, SP, is
/// found 16 bytes per step; the bytes before it are then checked against the table without
/// branching.
#[inline]
fn find_target_end(rest: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(stop) = crate::simd::outside_visible_mask(rest.get(i..).unwrap_or_default()) {
        if stop != 0 {
            let end = i + stop.trailing_zeros() as usize;
            let target = rest.get(..end).unwrap_or_default();
            if target.iter().fold(true, |ok, &b| ok & is_uri(b)) {
                return Some(end);
            }
            return target.iter().position(|&b| !is_uri(b));
        }
        i += crate::simd::WIDTH;
    }
    rest.iter().position(|&b| !is_uri(b))
}

/// Checks `HTTP/1.1` or `HTTP/1.0` at the start of `rest`; other well-formed versions are
/// `UnsupportedVersion` (505). Fails on the first byte that cannot start a valid version.
fn parse_version(rest: &[u8]) -> Result<Option<Version>, ParseError> {
    match rest.get(..8) {
        Some(b"HTTP/1.1") => return Ok(Some(Version::Http11)),
        Some(b"HTTP/1.0") => return Ok(Some(Version::Http10)),
        _ => {}
    }
    const PREFIX: &[u8] = b"HTTP/";
    for (i, &b) in rest.iter().take(8).enumerate() {
        let ok = match i {
            0..=4 => PREFIX.get(i) == Some(&b),
            5 | 7 => b.is_ascii_digit(),
            _ => b == b'.',
        };
        if !ok {
            return Err(ParseError::Version);
        }
    }
    match rest.get(..8) {
        None => Ok(None),
        Some(b"HTTP/1.1") => Ok(Some(Version::Http11)),
        Some(b"HTTP/1.0") => Ok(Some(Version::Http10)),
        Some(_) => Err(ParseError::UnsupportedVersion),
    }
}

/// RFC 9112 §3.2: origin-form for every method, absolute-form (`http`/`https` only),
/// asterisk-form for OPTIONS only. Authority-form is CONNECT's, refused before this.
fn classify_target(buf: &[u8], target: Span, method: Method) -> Result<(Target, Span), ParseError> {
    let t = target.get(buf);
    match t.first() {
        Some(b'/') => Ok((Target::Origin, target)),
        Some(b'*') if t.len() == 1 => {
            if method == Method::Options {
                Ok((Target::Asterisk, target))
            } else {
                Err(ParseError::Target)
            }
        }
        _ => {
            let scheme_len = if t.len() >= 7
                && t.get(..7)
                    .is_some_and(|s| s.eq_ignore_ascii_case(b"http://"))
            {
                7
            } else if t.len() >= 8
                && t.get(..8)
                    .is_some_and(|s| s.eq_ignore_ascii_case(b"https://"))
            {
                8
            } else {
                return Err(ParseError::Target);
            };
            let after = t.get(scheme_len..).unwrap_or_default();
            let alen = after
                .iter()
                .position(|&b| b == b'/' || b == b'?')
                .unwrap_or(after.len());
            let authority = after.get(..alen).unwrap_or_default();
            if !is_valid_host(authority) {
                return Err(ParseError::HostValue);
            }
            if after.get(alen) == Some(&b'?') {
                return Err(ParseError::Target);
            }
            let astart = target.start as usize + scheme_len;
            let auth = Span::new(astart, astart + alen);
            let path = Span::new(astart + alen, target.end());
            Ok((Target::Absolute { authority: auth }, path))
        }
    }
}

/// Offset of the first byte at or after `from` that cannot be in a field value (the CR of a
/// well-formed line), or `None` when there is none in `buf` yet. 16 bytes per step; the last
/// bytes are covered by one overlapping load that ends at the buffer's end, so the tail is
/// neither copied nor scanned byte by byte.
#[inline(always)]
fn find_value_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(stop) = crate::simd::value_stop_mask(buf.get(i..)?) {
        if stop != 0 {
            return Some(i + stop.trailing_zeros() as usize);
        }
        i += crate::simd::WIDTH;
    }
    let tail = buf.len().checked_sub(i).filter(|&t| t > 0)?;
    match buf.len().checked_sub(crate::simd::WIDTH) {
        Some(w) => {
            // Drop the bits of the bytes before `i` that the overlapping load also saw.
            let stop = crate::simd::value_stop_mask(buf.get(w..)?)? >> (crate::simd::WIDTH - tail);
            (stop != 0).then(|| i + stop.trailing_zeros() as usize)
        }
        None => buf
            .get(i..)?
            .iter()
            .position(|&b| !is_field_value(b))
            .map(|k| i + k),
    }
}

/// Parses field lines from `pos` up to and including the empty line. Returns the offset just
/// past the head, or `None` when more bytes are needed. The name is checked byte by byte up to
/// its colon (names are short); the value is scanned wide.
pub(crate) fn parse_fields(
    buf: &[u8],
    mut pos: usize,
    fields: &mut Vec<Field>,
    limits: &Limits,
) -> Result<Option<usize>, ParseError> {
    loop {
        let line = buf.get(pos..).unwrap_or_default();
        let colon = match name_len(line) {
            Some(n) if n > 0 && line.get(n) == Some(&b':') => n,
            _ => return line_break(line, pos, limits),
        };
        let mut vstart = pos + colon + 1;
        while let Some(b' ' | b'\t') = buf.get(vstart) {
            vstart += 1;
        }
        let Some(stop) = find_value_end(buf, vstart) else {
            return Ok(None);
        };
        match (buf.get(stop), buf.get(stop + 1)) {
            (Some(b'\r'), Some(b'\n')) => {}
            (Some(b'\r'), None) => return Ok(None),
            (Some(b'\r'), Some(_)) => return Err(ParseError::BareCr),
            (Some(b'\n'), _) => return Err(ParseError::BareLf),
            _ => return Err(ParseError::FieldValue),
        }
        let mut vend = stop;
        while vend > vstart && matches!(buf.get(vend - 1), Some(b' ' | b'\t')) {
            vend -= 1;
        }
        if fields.len() >= limits.max_fields {
            return Err(ParseError::TooManyFields);
        }
        if pos > limits.max_head {
            return Err(ParseError::HeadTooLarge);
        }
        let name = line.get(..colon).unwrap_or_default();
        fields.push(Field {
            name: Span::new(pos, pos + colon),
            value: Span::new(vstart, vend),
            kind: FieldKind::of(name),
        });
        pos = stop + 2;
    }
}

/// Length of the run of `tchar` bytes at the start of `line` (a field name when a colon ends
/// it), or `None` if the run reaches the end of `line`. Eight bytes per step while they are
/// all `tchar`: one table load and one AND per byte, no branch.
#[inline(always)]
fn name_len(line: &[u8]) -> Option<usize> {
    let mut n = 0;
    while let Some(chunk) = line.get(n..n + 8) {
        if chunk.iter().fold(true, |ok, &b| ok & is_tchar(b)) {
            n += 8;
        } else {
            break;
        }
    }
    line.get(n..)?
        .iter()
        .position(|&b| !is_tchar(b))
        .map(|k| n + k)
}

/// A field line that does not start with `name:`: the empty line ending the head, more bytes
/// needed, or the error that the first byte outside the name shows.
#[cold]
fn line_break(line: &[u8], pos: usize, limits: &Limits) -> Result<Option<usize>, ParseError> {
    match line {
        [] | [b'\r'] => Ok(None),
        [b'\r', b'\n', ..] => Ok(Some(pos + 2)),
        [b'\r', ..] => Err(ParseError::BareCr),
        [b'\n', ..] => Err(ParseError::BareLf),
        [b' ' | b'\t', ..] => Err(ParseError::ObsFold),
        _ if pos > limits.max_head => Err(ParseError::HeadTooLarge),
        _ => match line.iter().position(|&b| !is_tchar(b)) {
            Some(i) => Err(name_error(line, i)),
            None => Ok(None),
        },
    }
}

/// The error for a field line whose name breaks at `line[i]`.
#[cold]
fn name_error(line: &[u8], i: usize) -> ParseError {
    match line.get(i) {
        Some(b' ' | b'\t') if i > 0 => ParseError::SpaceBeforeColon,
        _ => ParseError::FieldName,
    }
}

/// Parses a response head from the start of `buf` into `head` (status-line, fields, framing
/// facts). The reason phrase may be empty and the SP before it may be missing (common in the
/// wild); everything else is as strict as for requests.
pub fn parse_response(
    buf: &[u8],
    head: &mut ResponseHead,
    limits: &Limits,
) -> Result<Status, ParseError> {
    head.fields.clear();
    let version = match parse_version(buf).map_err(|_| ParseError::StatusLine)? {
        Some(v) => v,
        None => return Ok(Status::Partial),
    };
    let rest = buf.get(8..).unwrap_or_default();
    let Some(code) = rest.get(..4) else {
        return Ok(Status::Partial);
    };
    let status = match code {
        [b' ', a, b, c]
            if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() && *a != b'0' =>
        {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(ParseError::StatusLine),
    };
    let rpos = 12;
    let rest = buf.get(rpos..).unwrap_or_default();
    let reason = match rest {
        [] | [b'\r'] => return Ok(Status::Partial),
        [b'\r', b'\n', ..] => Span::new(rpos, rpos),
        [b' ', tail @ ..] => {
            let Some(rlen) = tail.iter().position(|&b| !is_field_value(b)) else {
                return Ok(Status::Partial);
            };
            match (tail.get(rlen), tail.get(rlen + 1)) {
                (Some(b'\r'), Some(b'\n')) => Span::new(rpos + 1, rpos + 1 + rlen),
                (Some(b'\r'), None) => return Ok(Status::Partial),
                _ => return Err(ParseError::StatusLine),
            }
        }
        _ => return Err(ParseError::StatusLine),
    };
    let fields_start = reason.end() + 2;
    let Some(end) = parse_fields(buf, fields_start, &mut head.fields, limits)? else {
        return if buf.len() > limits.max_head {
            Err(ParseError::HeadTooLarge)
        } else {
            Ok(Status::Partial)
        };
    };
    if end > limits.max_head {
        return Err(ParseError::HeadTooLarge);
    }
    head.version = version;
    head.status = status;
    head.reason = reason;
    head.head_len = end;
    analyze_response(head, buf)?;
    Ok(Status::Complete(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain reading of what `find_value_end` computes.
    fn reference(buf: &[u8], from: usize) -> Option<usize> {
        let k = buf.get(from..)?.iter().position(|&b| !is_field_value(b))?;
        Some(from + k)
    }

    #[test]
    fn find_value_end_agrees_with_the_plain_reading() {
        let specials = [b':', b'\r', b'\n', b'\t', 0u8, 0x7f, 0x80, 0xff, b' ', b'a'];
        for len in 0..40 {
            for at in 0..len {
                for &x in &specials {
                    for &y in &specials {
                        let mut line: Vec<u8> = (0..len).map(|i| b"value: a b"[i % 10]).collect();
                        line[at] = x;
                        line[(at * 7 + 3) % len] = y;
                        assert_eq!(find_value_end(&line, 0), reference(&line, 0), "{line:?}");
                        // also when the value starts inside a larger buffer
                        let mut framed = b"Prefix: xxxxxxxxxxxxxxxx\r\nName: ".to_vec();
                        let from = framed.len();
                        framed.extend_from_slice(&line);
                        assert_eq!(
                            find_value_end(&framed, from),
                            reference(&framed, from),
                            "{line:?}"
                        );
                    }
                }
            }
        }
    }
}
