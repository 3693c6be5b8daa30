//! gRPC's view of the answers the gateway makes itself: a gRPC client (a request whose
//! `content-type` is `application/grpc…`) is refused with a Trailers-Only response, HTTP 200
//! with `grpc-status` and `grpc-message` in its head and no body, instead of problem+json.
//! One table maps the gateway's status to the gRPC code.

use std::time::Duration;

use proto::RequestHead;
use proto::write::put_field;

/// Which gRPC a request speaks, by its `content-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Not gRPC.
    None,
    /// `application/grpc…` (HTTP/2).
    Grpc,
    /// `application/grpc-web` or `+proto` (browsers).
    Web,
    /// `application/grpc-web-text…` (base64 bodies).
    WebText,
}

impl Flavor {
    /// The flavor of the request `head` (spans into `buf`).
    pub fn of(head: &RequestHead, buf: &[u8]) -> Flavor {
        let Some(ct) = head.value_of(buf, b"content-type") else {
            return Flavor::None;
        };
        let starts = |p: &[u8]| {
            ct.len() >= p.len() && ct.get(..p.len()).is_some_and(|c| c.eq_ignore_ascii_case(p))
        };
        if starts(b"application/grpc-web-text") {
            Flavor::WebText
        } else if starts(b"application/grpc-web") {
            Flavor::Web
        } else if starts(b"application/grpc") && matches!(ct.get(16), None | Some(b'+' | b';')) {
            Flavor::Grpc
        } else {
            Flavor::None
        }
    }

    /// The content-type of an answer to it.
    fn content_type(self) -> &'static [u8] {
        match self {
            Flavor::None | Flavor::Grpc => b"application/grpc",
            Flavor::Web => b"application/grpc-web+proto",
            Flavor::WebText => b"application/grpc-web-text+proto",
        }
    }
}

/// The deadline a gRPC client set (`grpc-timeout`: up to 8 digits and a unit, `H`, `M`,
/// `S`, `m`, `u` or `n`); `None` when absent or malformed.
pub fn timeout(head: &RequestHead, buf: &[u8]) -> Option<Duration> {
    let v = head.value_of(buf, b"grpc-timeout")?;
    let (unit, digits) = v.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n.saturating_mul(3600)),
        b'M' => Duration::from_secs(n.saturating_mul(60)),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The gRPC status code for a refusal or failure the gateway answers with `status`.
pub fn code(status: u16) -> u8 {
    match status {
        // INVALID_ARGUMENT: the gateway found the request itself wrong
        400 | 411 | 414 | 422 => 3,
        // DEADLINE_EXCEEDED
        408 | 504 => 4,
        // PERMISSION_DENIED
        403 => 7,
        // RESOURCE_EXHAUSTED: limits and sizes
        413 | 429 | 431 => 8,
        // ABORTED
        409 => 10,
        // UNIMPLEMENTED: no such route or method
        404 | 405 | 501 | 505 => 12,
        // UNAVAILABLE
        502 | 503 => 14,
        // UNAUTHENTICATED
        401 => 16,
        // INTERNAL
        500 => 13,
        // UNKNOWN
        _ => 2,
    }
}

/// Renders the Trailers-Only refusal into `out` (cleared first): the gateway's `status`
/// becomes `grpc-status`, `detail` the percent-encoded `grpc-message`; `fields` are whole
/// field lines (a stage's, e.g. `WWW-Authenticate`), `connection` the Connection value (or
/// empty).
pub fn render_refusal(
    out: &mut Vec<u8>,
    flavor: Flavor,
    status: u16,
    detail: &str,
    fields: &[&[u8]],
    connection: &[u8],
) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    put_field(out, b"Content-Type", flavor.content_type());
    let mut digits = Vec::with_capacity(2);
    proto::write::put_decimal(&mut digits, u64::from(code(status)));
    put_field(out, b"grpc-status", &digits);
    let mut message = Vec::with_capacity(detail.len());
    percent_encode(&mut message, detail.as_bytes());
    put_field(out, b"grpc-message", &message);
    for f in fields {
        out.extend_from_slice(f);
    }
    if !connection.is_empty() {
        put_field(out, b"Connection", connection);
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
}

/// `grpc-message` encoding: bytes outside printable ASCII, and `%`, as `%XX`.
fn percent_encode(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b);
        } else {
            out.push(b'%');
            out.push(HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'));
            out.push(HEX.get(usize::from(b & 0xf)).copied().unwrap_or(b'0'));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flavor(ct: &str) -> Flavor {
        let text = format!("POST /a HTTP/1.1\r\nHost: h\r\nContent-Type: {ct}\r\n\r\n");
        let mut head = RequestHead::with_capacity(8);
        proto::parse_request(text.as_bytes(), &mut head, &proto::Limits::default()).unwrap();
        Flavor::of(&head, text.as_bytes())
    }

    #[test]
    fn flavors_by_content_type() {
        assert_eq!(flavor("application/grpc"), Flavor::Grpc);
        assert_eq!(flavor("application/grpc+proto"), Flavor::Grpc);
        assert_eq!(flavor("Application/GRPC;x=1"), Flavor::Grpc);
        assert_eq!(flavor("application/grpc-web+proto"), Flavor::Web);
        assert_eq!(flavor("application/grpc-web-text"), Flavor::WebText);
        assert_eq!(flavor("application/grpcx"), Flavor::None);
        assert_eq!(flavor("application/json"), Flavor::None);
    }

    #[test]
    fn deadlines_by_unit_and_malformed_ones_ignored() {
        let of = |v: &str| {
            let text = format!("POST /a HTTP/1.1\r\nHost: h\r\ngrpc-timeout: {v}\r\n\r\n");
            let mut head = RequestHead::with_capacity(8);
            proto::parse_request(text.as_bytes(), &mut head, &proto::Limits::default()).unwrap();
            timeout(&head, text.as_bytes())
        };
        assert_eq!(of("100m"), Some(Duration::from_millis(100)));
        assert_eq!(of("2S"), Some(Duration::from_secs(2)));
        assert_eq!(of("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(of("5000u"), Some(Duration::from_micros(5000)));
        assert_eq!(of("123456789m"), None, "at most 8 digits");
        assert_eq!(of("10x"), None);
        assert_eq!(of("m"), None);
    }

    #[test]
    fn statuses_map_to_grpc_codes() {
        let table = [
            (401, 16),
            (403, 7),
            (429, 8),
            (413, 8),
            (503, 14),
            (502, 14),
            (504, 4),
            (404, 12),
            (400, 3),
            (500, 13),
            (418, 2),
        ];
        for (status, grpc) in table {
            assert_eq!(code(status), grpc, "{status}");
        }
    }

    #[test]
    fn a_refusal_is_trailers_only_with_its_message_encoded() {
        let mut out = Vec::new();
        let extra: &[u8] = b"WWW-Authenticate: Bearer\r\n";
        render_refusal(
            &mut out,
            Flavor::Grpc,
            401,
            "no token: 100% é",
            &[extra],
            b"",
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\ngrpc-status: 16\r\n\
             grpc-message: no token: 100%25 %C3%A9\r\nWWW-Authenticate: Bearer\r\n\
             Content-Length: 0\r\n\r\n"
        );
    }
}
