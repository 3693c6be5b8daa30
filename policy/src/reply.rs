//! Replies the gateway writes itself: pre-rendered `LocalReply`s for stages, and RFC 9457
//! `application/problem+json` error bodies rendered into the connection's output buffer.

use proto::write::{put_content_length, put_decimal, put_field, put_status_line, reason_phrase};

/// A complete answer rendered once at load: the head without its final CRLF (so the
/// connection can add `Connection: close`), and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// Status code.
    pub status: u16,
    /// Status-line and fields, each ending in CRLF, without the empty line.
    pub head: Box<[u8]>,
    /// Body bytes (not sent for HEAD); shared, so a cache entry freshened by a `304` keeps
    /// its body without a copy, and one stored on another shard is served without one.
    pub body: bytes::Bytes,
}

impl LocalReply {
    /// Renders a reply with a body of `content_type` and any extra fields.
    pub fn new(status: u16, content_type: &str, body: &[u8], extra: &[(&str, &str)]) -> LocalReply {
        let mut head = Vec::with_capacity(128);
        put_status_line(&mut head, status, reason_phrase(status).as_bytes());
        if !body.is_empty() || status >= 200 {
            put_field(&mut head, b"Content-Type", content_type.as_bytes());
        }
        for (k, v) in extra {
            put_field(&mut head, k.as_bytes(), v.as_bytes());
        }
        put_content_length(&mut head, body.len() as u64);
        LocalReply {
            status,
            head: head.into_boxed_slice(),
            body: bytes::Bytes::copy_from_slice(body),
        }
    }

    /// An `application/problem+json` reply (RFC 9457).
    pub fn problem(status: u16, detail: &str) -> LocalReply {
        let mut body = Vec::with_capacity(128);
        problem_body(&mut body, status, detail);
        LocalReply::new(status, "application/problem+json", &body, &[])
    }
}

/// Appends the problem+json document for `status` with `detail`.
pub fn problem_body(out: &mut Vec<u8>, status: u16, detail: &str) {
    out.extend_from_slice(b"{\"type\":\"about:blank\",\"title\":\"");
    json_escape(out, reason_phrase(status));
    out.extend_from_slice(b"\",\"status\":");
    put_decimal(out, u64::from(status));
    out.extend_from_slice(b",\"detail\":\"");
    json_escape(out, detail);
    out.extend_from_slice(b"\"}\n");
}

/// Appends a whole problem+json response (head and, unless `head_only`, body) to `out`.
/// `connection` is the Connection field value to send (`b""`: none); each of `extra` is
/// appended verbatim to the head (whole field lines ending in CRLF).
pub fn write_problem(
    out: &mut Vec<u8>,
    status: u16,
    detail: &str,
    connection: &[u8],
    head_only: bool,
    extra: &[&[u8]],
) {
    let body_start = out.len();
    problem_body(out, status, detail);
    let body_len = out.len() - body_start;
    // Render the head after the body, then rotate it in front: no temporary buffer.
    let head_start = out.len();
    put_status_line(out, status, reason_phrase(status).as_bytes());
    put_field(out, b"Content-Type", b"application/problem+json");
    put_content_length(out, body_len as u64);
    for field in extra {
        out.extend_from_slice(field);
    }
    if !connection.is_empty() {
        put_field(out, b"Connection", connection);
    }
    out.extend_from_slice(b"\r\n");
    let head_len = out.len() - head_start;
    if let Some(region) = out.get_mut(body_start..) {
        region.rotate_right(head_len);
    }
    if head_only {
        out.truncate(body_start + head_len);
    }
}

fn json_escape(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.push(
                    b"0123456789abcdef"
                        .get(usize::from(b >> 4))
                        .copied()
                        .unwrap_or(b'0'),
                );
                out.push(
                    b"0123456789abcdef"
                        .get(usize::from(b & 0xf))
                        .copied()
                        .unwrap_or(b'0'),
                );
            }
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_response_is_complete_http() {
        let mut out = b"prefix".to_vec();
        write_problem(&mut out, 404, "no route for \"/x\"", b"close", false, &[]);
        let text = String::from_utf8_lossy(&out[6..]).to_string();
        let body = "{\"type\":\"about:blank\",\"title\":\"Not Found\",\"status\":404,\"detail\":\"no route for \\\"/x\\\"\"}\n";
        assert_eq!(
            text,
            format!(
                "HTTP/1.1 404 Not Found\r\nContent-Type: application/problem+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        );
        let mut head_only = Vec::new();
        write_problem(&mut head_only, 404, "x", b"", true, &[b"Allow: GET\r\n"]);
        assert!(head_only.ends_with(b"Allow: GET\r\n\r\n"));
    }

    #[test]
    fn local_reply_renders_once() {
        let r = LocalReply::new(200, "text/plain", b"ok\n", &[("Cache-Control", "no-store")]);
        assert_eq!(
            &r.head[..],
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\nContent-Length: 3\r\n"
        );
        assert_eq!(&r.body[..], b"ok\n");
    }
}
