//! An HTTP/2 request's head written as the HTTP/1.1 head the gateway's one parser reads
//! (RFC 9113 §8.3.1: `:authority` becomes `Host`, split `cookie` fields are joined), so every
//! stream is routed, limited and checked by the same code and stages as an HTTP/1.1 request.
//! A byte no HTTP/1.1 field may hold (CR, LF, NUL) is written as DEL, which the parser refuses
//! with 400: nothing a client sends over HTTP/2 can add a field or end the head early.

use http::request::Parts;

/// How the request's body reaches the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// None (the HEADERS frame ended the stream).
    None,
    /// As sent, its length given by `content-length`.
    Sized,
    /// Chunked, as it arrives (no `content-length`).
    Chunked,
}

/// Writes `parts` as an HTTP/1.1 request head into `out`; `ended`: the stream ended with its
/// headers (no body).
pub fn write_head(parts: &Parts, ended: bool, out: &mut Vec<u8>) -> Body {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let connect = parts.method == http::Method::CONNECT;
    let authority = parts.uri.authority().map(|a| a.as_str());
    match (connect, authority, parts.uri.path_and_query()) {
        (true, Some(a), _) => clean(out, a.as_bytes()),
        (false, _, Some(pq)) => clean(out, pq.as_str().as_bytes()),
        _ => out.push(b'/'),
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(a) = authority {
        field(out, b"host", a.as_bytes());
    }
    let mut cookies: Vec<&[u8]> = Vec::new();
    let mut sized = false;
    for (name, value) in &parts.headers {
        match name.as_str() {
            // :authority wins over a Host field (RFC 9113 §8.3.1)
            "host" if authority.is_some() => continue,
            // HTTP/2 allows only "te: trailers": passed on, it lets trailers through the relay
            // (it goes no further: TE is hop-by-hop)
            "te" if value.as_bytes() != b"trailers" => continue,
            "cookie" => {
                cookies.push(value.as_bytes());
                continue;
            }
            "content-length" => sized = true,
            _ => {}
        }
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !cookies.is_empty() {
        out.extend_from_slice(b"cookie: ");
        for (i, c) in cookies.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b"; ");
            }
            clean(out, c);
        }
        out.extend_from_slice(b"\r\n");
    }
    let body = match (ended, sized) {
        (true, _) => Body::None,
        (false, true) => Body::Sized,
        (false, false) => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            Body::Chunked
        }
    };
    out.extend_from_slice(b"\r\n");
    body
}

/// Appends `name: value` CRLF, each byte no HTTP/1.1 field may hold written as DEL.
pub fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    clean(out, name);
    out.extend_from_slice(b": ");
    clean(out, value);
    out.extend_from_slice(b"\r\n");
}

/// Appends `bytes`, each CR, LF or NUL as DEL (refused by the parser).
fn clean(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend(bytes.iter().map(|&b| match b {
        b'\r' | b'\n' | 0 => 0x7f,
        b => b,
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(req: http::request::Builder) -> Parts {
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn authority_becomes_host_and_cookies_join() {
        let p = parts(
            http::Request::post("http://api.example:8080/v1/items?x=1")
                .header("host", "other")
                .header("cookie", "a=1")
                .header("te", "trailers")
                .header("cookie", "b=2")
                .header("x-id", "7"),
        );
        let mut out = Vec::new();
        assert_eq!(write_head(&p, false, &mut out), Body::Chunked);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /v1/items?x=1 HTTP/1.1\r\nhost: api.example:8080\r\nte: trailers\r\nx-id: 7\r\n\
             cookie: a=1; b=2\r\ntransfer-encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn a_sized_or_ended_body_is_not_chunked() {
        let p = parts(http::Request::put("http://h/").header("content-length", "3"));
        let mut out = Vec::new();
        assert_eq!(write_head(&p, false, &mut out), Body::Sized);
        assert!(!out.windows(8).any(|w| w == b"chunked\r"));
        let p = parts(http::Request::get("http://h/"));
        assert_eq!(write_head(&p, true, &mut Vec::new()), Body::None);
    }

    #[test]
    fn what_could_split_a_field_is_written_as_del() {
        // the http crate refuses these bytes already; should one get through, it cannot
        // start a field of its own, and the parser refuses the head
        let mut head = b"GET / HTTP/1.1\r\nhost: h\r\nx: ".to_vec();
        clean(&mut head, b"v\r\nInjected: 1\0");
        head.extend_from_slice(b"\r\n\r\n");
        assert!(head.ends_with(b"x: v\x7f\x7fInjected: 1\x7f\r\n\r\n"));
        let mut parsed = proto::RequestHead::with_capacity(8);
        let got = proto::parse_request(&head, &mut parsed, &proto::Limits::default());
        assert!(got.is_err(), "DEL in a value is refused: {got:?}");
    }

    #[test]
    fn connect_names_its_authority() {
        let p = parts(http::Request::connect("db.example:5432"));
        let mut out = Vec::new();
        write_head(&p, false, &mut out);
        assert!(out.starts_with(b"CONNECT db.example:5432 HTTP/1.1\r\nhost: db.example:5432\r\n"));
    }
}
