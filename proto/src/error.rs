//! `ParseError`: one `Copy` variant per malformation, and the one table mapping each to a status.

use std::fmt;

/// Why a message head or body could not be accepted. Each variant decides its status code
/// through [`ParseError::status`]; the table test in this file lists one row per variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// A byte that is not a token character where the method must be.
    Method,
    /// The request-target is empty, has a forbidden byte, or is of a form not allowed here.
    Target,
    /// The HTTP-version is not `HTTP/<digit>.<digit>`.
    Version,
    /// A well-formed version other than HTTP/1.0 or HTTP/1.1.
    UnsupportedVersion,
    /// Request-line parts not separated by exactly one SP, or an empty line where one is needed.
    RequestLine,
    /// A status-line that is not `HTTP-version SP 3DIGIT SP reason`.
    StatusLine,
    /// A field name with a non-token byte, or empty.
    FieldName,
    /// Whitespace between a field name and its colon (RFC 9112 §5.1: must be rejected).
    SpaceBeforeColon,
    /// A control byte (other than HTAB) or DEL in a field value.
    FieldValue,
    /// A field line that starts with whitespace: obsolete line folding (RFC 9112 §5.2).
    ObsFold,
    /// A CR not followed by LF.
    BareCr,
    /// A line ending in LF without CR (strict mode).
    BareLf,
    /// The request-line is longer than the configured limit (414).
    RequestLineTooLong,
    /// The head is larger than the configured limit (431).
    HeadTooLarge,
    /// More header fields than the configured limit (431).
    TooManyFields,
    /// An HTTP/1.1 request without a Host field, or more than one Host field.
    Host,
    /// A Host field or absolute-form authority that is not a valid `host[:port]`.
    HostValue,
    /// A Content-Length that is not a decimal number, is larger than 2^63 − 1 (beyond any
    /// signed 64-bit length: no real body is that large), or disagrees with another one.
    ContentLength,
    /// A Transfer-Encoding list that is malformed, applies chunked twice or not last.
    TransferEncoding,
    /// A transfer-coding other than chunked (501: we do not implement it).
    UnknownTransferCoding,
    /// Both Transfer-Encoding and Content-Length on a request (request smuggling vector).
    ContentLengthWithTransferEncoding,
    /// Transfer-Encoding on an HTTP/1.0 request (RFC 9112 §6.1: faulty framing).
    TransferEncodingHttp10,
    /// A method this gateway does not proxy (CONNECT).
    MethodNotImplemented,
    /// An Expect value other than 100-continue (417).
    Expectation,
    /// A chunk-size line that is not hex digits with well-formed extensions.
    ChunkSize,
    /// A chunk size larger than 2^63 − 1 (beyond any signed 64-bit length).
    ChunkSizeOverflow,
    /// Chunk data not followed by CRLF.
    ChunkData,
    /// Chunk extensions longer than the limit.
    ChunkExtensionTooLong,
    /// A malformed or oversized trailer section.
    Trailer,
    /// A chunked body whose chunk sizes add up to more than the limit the decoder was given
    /// (a configured body limit: 413, before the data arrives).
    BodyTooLarge,
}

impl ParseError {
    /// The status code a server answers this error with (RFC 9110 §15, RFC 9112).
    pub const fn status(self) -> u16 {
        match self {
            ParseError::RequestLineTooLong => 414,
            ParseError::HeadTooLarge | ParseError::TooManyFields => 431,
            ParseError::UnknownTransferCoding | ParseError::MethodNotImplemented => 501,
            ParseError::UnsupportedVersion => 505,
            ParseError::Expectation => 417,
            ParseError::Method
            | ParseError::Target
            | ParseError::Version
            | ParseError::RequestLine
            | ParseError::StatusLine
            | ParseError::FieldName
            | ParseError::SpaceBeforeColon
            | ParseError::FieldValue
            | ParseError::ObsFold
            | ParseError::BareCr
            | ParseError::BareLf
            | ParseError::Host
            | ParseError::HostValue
            | ParseError::ContentLength
            | ParseError::TransferEncoding
            | ParseError::ContentLengthWithTransferEncoding
            | ParseError::TransferEncodingHttp10
            | ParseError::ChunkSize
            | ParseError::ChunkSizeOverflow
            | ParseError::ChunkData
            | ParseError::ChunkExtensionTooLong
            | ParseError::Trailer => 400,
            ParseError::BodyTooLarge => 413,
        }
    }

    /// A short, client-safe description (goes into the problem+json `detail`).
    pub const fn detail(self) -> &'static str {
        match self {
            ParseError::Method => "invalid method",
            ParseError::Target => "invalid request-target",
            ParseError::Version => "invalid HTTP version",
            ParseError::UnsupportedVersion => "HTTP version not supported",
            ParseError::RequestLine => "malformed request-line",
            ParseError::StatusLine => "malformed status-line",
            ParseError::FieldName => "invalid header field name",
            ParseError::SpaceBeforeColon => "whitespace between header field name and colon",
            ParseError::FieldValue => "control character in header field value",
            ParseError::ObsFold => "obsolete line folding in header section",
            ParseError::BareCr => "bare CR in message head",
            ParseError::BareLf => "line not terminated by CRLF",
            ParseError::RequestLineTooLong => "request-line too long",
            ParseError::HeadTooLarge => "request header section too large",
            ParseError::TooManyFields => "too many header fields",
            ParseError::Host => "missing or duplicate Host header field",
            ParseError::HostValue => "invalid Host",
            ParseError::ContentLength => "invalid Content-Length",
            ParseError::TransferEncoding => "invalid Transfer-Encoding",
            ParseError::UnknownTransferCoding => "transfer-coding not implemented",
            ParseError::ContentLengthWithTransferEncoding => {
                "both Content-Length and Transfer-Encoding present"
            }
            ParseError::TransferEncodingHttp10 => "Transfer-Encoding in an HTTP/1.0 request",
            ParseError::MethodNotImplemented => "method not implemented",
            ParseError::Expectation => "unsupported expectation",
            ParseError::ChunkSize => "invalid chunk size line",
            ParseError::ChunkSizeOverflow => "chunk size too large",
            ParseError::ChunkData => "chunk data not terminated by CRLF",
            ParseError::ChunkExtensionTooLong => "chunk extensions too long",
            ParseError::Trailer => "invalid trailer section",
            ParseError::BodyTooLarge => "request body too large",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.detail())
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::ParseError::*;

    #[test]
    fn status_table() {
        let table = [
            (Method, 400),
            (Target, 400),
            (Version, 400),
            (UnsupportedVersion, 505),
            (RequestLine, 400),
            (StatusLine, 400),
            (FieldName, 400),
            (SpaceBeforeColon, 400),
            (FieldValue, 400),
            (ObsFold, 400),
            (BareCr, 400),
            (BareLf, 400),
            (RequestLineTooLong, 414),
            (HeadTooLarge, 431),
            (TooManyFields, 431),
            (Host, 400),
            (HostValue, 400),
            (ContentLength, 400),
            (TransferEncoding, 400),
            (UnknownTransferCoding, 501),
            (ContentLengthWithTransferEncoding, 400),
            (TransferEncodingHttp10, 400),
            (MethodNotImplemented, 501),
            (Expectation, 417),
            (ChunkSize, 400),
            (ChunkSizeOverflow, 400),
            (ChunkData, 400),
            (ChunkExtensionTooLong, 400),
            (Trailer, 400),
            (BodyTooLarge, 413),
        ];
        for (e, s) in table {
            assert_eq!(e.status(), s, "{e:?}");
            assert!(!e.detail().is_empty());
        }
    }
}
