//! gRPC-Web (browsers) to gRPC (an HTTP/2 upstream) and back, at `outbound`'s edges: the
//! request's `application/grpc-web…` becomes `application/grpc` (a `-text` body base64
//! decoded as it streams); the answer's content-type goes back to gRPC-Web, its trailers
//! become the body's last frame (flag 0x80, then `name:value` CRLF lines), and a `-text`
//! answer is base64 encoded as it streams.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Which gRPC-Web a call speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Web {
    /// Binary bodies.
    Binary,
    /// Base64 bodies.
    Text,
}

impl Web {
    /// The content-type of answers.
    pub fn content_type(self) -> &'static str {
        match self {
            Web::Binary => "application/grpc-web+proto",
            Web::Text => "application/grpc-web-text+proto",
        }
    }
}

/// The gRPC content-type a gRPC-Web one stands for (`+proto`, `+json` … kept).
pub fn grpc_content_type(web: &[u8]) -> Vec<u8> {
    let rest = web
        .iter()
        .position(|&b| b == b'+' || b == b';')
        .and_then(|i| web.get(i..))
        .unwrap_or_default();
    let mut out = b"application/grpc".to_vec();
    out.extend_from_slice(rest);
    out
}

/// A base64 body decoded as it arrives (padded segments may follow each other).
#[derive(Debug, Default)]
pub struct Decoder {
    /// Characters of an incomplete quantum.
    rest: Vec<u8>,
}

impl Decoder {
    /// Decodes what `input` completes; `None` when it is not base64.
    pub fn decode(&mut self, input: &[u8]) -> Option<Vec<u8>> {
        self.rest
            .extend(input.iter().copied().filter(|b| !b.is_ascii_whitespace()));
        let whole = self.rest.len() / 4 * 4;
        let mut out = Vec::with_capacity(whole / 4 * 3);
        // quanta one at a time where padding ends a segment, else in one call
        let mut from = 0;
        for (i, q) in self.rest.get(..whole)?.chunks(4).enumerate() {
            if q.contains(&b'=') {
                let seg = self.rest.get(from..(i + 1) * 4)?;
                STANDARD.decode_vec(seg, &mut out).ok()?;
                from = (i + 1) * 4;
            }
        }
        STANDARD
            .decode_vec(self.rest.get(from..whole)?, &mut out)
            .ok()?;
        self.rest.drain(..whole);
        Some(out)
    }

    /// Whether an incomplete quantum is left (the body was cut).
    pub fn unfinished(&self) -> bool {
        !self.rest.is_empty()
    }
}

/// A body base64 encoded as it goes.
#[derive(Debug, Default)]
pub struct Encoder {
    /// Bytes of an incomplete group.
    rest: Vec<u8>,
}

impl Encoder {
    /// Encodes what `input` completes (`last`: pad the end).
    pub fn encode(&mut self, input: &[u8], last: bool) -> Vec<u8> {
        self.rest.extend_from_slice(input);
        let whole = if last {
            self.rest.len()
        } else {
            self.rest.len() / 3 * 3
        };
        let out = STANDARD.encode(self.rest.get(..whole).unwrap_or_default());
        self.rest.drain(..whole);
        out.into_bytes()
    }
}

/// The trailer frame that ends a gRPC-Web body.
pub fn trailer_frame(trailers: Option<&http::HeaderMap>) -> Vec<u8> {
    let mut lines = Vec::new();
    for (name, value) in trailers.iter().flat_map(|t| t.iter()) {
        super::request::field(&mut lines, name.as_str().as_bytes(), value.as_bytes());
    }
    let mut frame = Vec::with_capacity(5 + lines.len());
    frame.push(0x80);
    frame.extend_from_slice(&u32::try_from(lines.len()).unwrap_or(u32::MAX).to_be_bytes());
    frame.extend_from_slice(&lines);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_bodies_decode_in_any_pieces_and_across_padding() {
        let all = b"AAAAAAJoaQ==AAAAAAJoaQ==";
        for split in 0..=all.len() {
            let mut d = Decoder::default();
            let (a, b) = all.split_at(split);
            let mut got = d.decode(a).unwrap();
            got.extend(d.decode(b).unwrap());
            assert_eq!(got, b"\0\0\0\0\x02hi\0\0\0\0\x02hi", "split {split}");
            assert!(!d.unfinished());
        }
        assert!(Decoder::default().decode(b"!!!!").is_none());
    }

    #[test]
    fn encoding_in_pieces_is_encoding_at_once() {
        let data: Vec<u8> = (0..100u8).collect();
        let mut e = Encoder::default();
        let mut out = e.encode(&data[..7], false);
        out.extend(e.encode(&data[7..50], false));
        out.extend(e.encode(&data[50..], true));
        assert_eq!(out, STANDARD.encode(&data).into_bytes());
    }

    #[test]
    fn content_types_and_the_trailer_frame() {
        assert_eq!(
            grpc_content_type(b"application/grpc-web+proto"),
            b"application/grpc+proto"
        );
        assert_eq!(
            grpc_content_type(b"application/grpc-web-text"),
            b"application/grpc"
        );
        let mut t = http::HeaderMap::new();
        t.insert("grpc-status", "0".parse().unwrap());
        let f = trailer_frame(Some(&t));
        assert_eq!(f, b"\x80\0\0\0\x10grpc-status: 0\r\n");
    }
}
