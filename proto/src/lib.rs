//! HTTP/1.1 wire format (RFC 9112): zero-copy head parsing into spans, framing, chunked coding,
//! serialization helpers; and HTTP/2 frame boundaries (`h2frame`), for metering. Pure: no IO, no allocation per request (bench: `proto_parse`).
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod chars;
pub mod chunked;
pub mod date;
pub mod error;
pub mod framing;
pub mod h2frame;
pub mod head;
pub mod parse;
pub mod path;
mod simd;
pub mod write;

pub use chunked::{ChunkedDecoder, Decoded, Emit, Step};
pub use error::ParseError;
pub use framing::response_framing;
pub use head::{
    Field, FieldKind, Framing, Limits, Method, Repeated, RequestHead, ResponseHead, Span, Target,
    Version,
};
pub use parse::{Status, parse_request, parse_response};
