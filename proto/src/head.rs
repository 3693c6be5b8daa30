//! Parsed heads as spans (u32 offsets) into the caller's read buffer; accessors take `&buf`.
//! A head owns only a reusable `Vec<Field>` whose capacity is reserved once per connection.

/// A byte range in the read buffer. Offsets, not borrows: the buffer moves into every read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    /// Offset of the first byte.
    pub start: u32,
    /// Number of bytes.
    pub len: u32,
}

impl Span {
    /// A span from `start` to `end` (exclusive).
    #[inline]
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            len: end.saturating_sub(start) as u32,
        }
    }

    /// The bytes this span covers in `buf` (empty if out of range).
    #[inline]
    pub fn get<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        let start = self.start as usize;
        buf.get(start..start + self.len as usize)
            .unwrap_or_default()
    }

    /// Offset one past the last byte.
    #[inline]
    pub fn end(&self) -> usize {
        self.start as usize + self.len as usize
    }

    /// True when the span covers no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes (0: no body).
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the sender closes the connection (responses only).
    UntilClose,
}

/// Request methods with meaning to the proxy; the rest are `Other` (any token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD: the response never has a body.
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// OPTIONS: may use the asterisk-form target.
    Options,
    /// TRACE
    Trace,
    /// PATCH
    Patch,
    /// CONNECT: 501 unless a route tunnels it.
    Connect,
    /// Any other token (case-sensitive; `get` is not GET).
    Other,
}

impl Method {
    /// Classifies a method token.
    pub fn from_bytes(m: &[u8]) -> Method {
        match m {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            b"CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }

    /// Idempotent per RFC 9110 §9.2.2: safe to send again on a fresh connection.
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Put
                | Method::Delete
                | Method::Options
                | Method::Trace
        )
    }
}

/// The two HTTP/1.x versions we speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: close by default, no chunked coding.
    Http10,
    /// HTTP/1.1
    Http11,
}

/// The form of a request-target (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `/path?query`
    Origin,
    /// `http://authority/path?query`; the authority replaces Host when forwarding.
    Absolute {
        /// The authority (host[:port]).
        authority: Span,
    },
    /// `*`, only with OPTIONS.
    Asterisk,
    /// `host:port`, only with CONNECT (and only where `Limits::allow_connect`).
    Authority,
}

/// What a header field means to the proxy, decided once while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Any other field: forwarded as is.
    Other,
    /// Host
    Host,
    /// Content-Length (re-written by the proxy)
    ContentLength,
    /// Transfer-Encoding (re-written by the proxy)
    TransferEncoding,
    /// Connection (hop-by-hop)
    Connection,
    /// Keep-Alive (hop-by-hop)
    KeepAlive,
    /// TE (hop-by-hop)
    Te,
    /// Trailer (hop-by-hop)
    Trailer,
    /// Upgrade (hop-by-hop unless tunnelling)
    Upgrade,
    /// Proxy-Connection, Proxy-Authorization, Proxy-Authenticate, Proxy (httpoxy) … (hop-by-hop)
    Proxy,
    /// Expect (answered by the proxy)
    Expect,
    /// X-Forwarded-For
    XForwardedFor,
    /// X-Forwarded-Proto
    XForwardedProto,
    /// X-Forwarded-Host
    XForwardedHost,
    /// Via
    Via,
    /// Date
    Date,
    /// `Content_Length` / `Transfer_Encoding`: look-alikes of framing fields that some
    /// servers normalise to the real ones. Never forwarded.
    FramingLookAlike,
}

impl FieldKind {
    /// Classifies a field name (case-insensitive). Dispatches on (length, first letter), so
    /// most names cost no comparison at all.
    pub fn of(name: &[u8]) -> FieldKind {
        let eq = |s: &[u8]| name.eq_ignore_ascii_case(s);
        let first = name.first().map_or(0, |b| b | 0x20);
        match (name.len(), first) {
            (2, b't') if eq(b"te") => FieldKind::Te,
            (3, b'v') if eq(b"via") => FieldKind::Via,
            (4, b'h') if eq(b"host") => FieldKind::Host,
            (4, b'd') if eq(b"date") => FieldKind::Date,
            (6, b'e') if eq(b"expect") => FieldKind::Expect,
            (7, b't') if eq(b"trailer") => FieldKind::Trailer,
            (7, b'u') if eq(b"upgrade") => FieldKind::Upgrade,
            (10, b'c') if eq(b"connection") => FieldKind::Connection,
            (10, b'k') if eq(b"keep-alive") => FieldKind::KeepAlive,
            (14, b'c') if eq(b"content-length") => FieldKind::ContentLength,
            (14, b'c') if eq(b"content_length") => FieldKind::FramingLookAlike,
            (15, b'x') if eq(b"x-forwarded-for") => FieldKind::XForwardedFor,
            (16, b'x') if eq(b"x-forwarded-host") => FieldKind::XForwardedHost,
            (17, b't') if eq(b"transfer-encoding") => FieldKind::TransferEncoding,
            (17, b't') if eq(b"transfer_encoding") => FieldKind::FramingLookAlike,
            (17, b'x') if eq(b"x-forwarded-proto") => FieldKind::XForwardedProto,
            (n, b'p')
                if n >= 5
                    && name
                        .get(..5)
                        .is_some_and(|p| p.eq_ignore_ascii_case(b"proxy")) =>
            {
                if n == 5 || name.get(5) == Some(&b'-') {
                    FieldKind::Proxy
                } else {
                    FieldKind::Other
                }
            }
            _ => FieldKind::Other,
        }
    }

    /// Fields that describe one connection only and are never forwarded as received
    /// (RFC 9110 §7.6.1), plus the framing fields the proxy writes itself.
    pub fn is_hop_by_hop(self) -> bool {
        matches!(
            self,
            FieldKind::Connection
                | FieldKind::KeepAlive
                | FieldKind::Te
                | FieldKind::Trailer
                | FieldKind::Upgrade
                | FieldKind::Proxy
                | FieldKind::ContentLength
                | FieldKind::TransferEncoding
                | FieldKind::FramingLookAlike
        )
    }
}

/// One header field line: name and OWS-trimmed value as spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Field name.
    pub name: Span,
    /// Field value without surrounding whitespace.
    pub value: Span,
    /// What the field means to the proxy.
    pub kind: FieldKind,
}

/// Tokens seen in Connection fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// `close`
    pub close: bool,
    /// `keep-alive`
    pub keep_alive: bool,
    /// `upgrade`
    pub upgrade: bool,
    /// Some other token: names a field to drop when forwarding.
    pub names_fields: bool,
}

/// Size limits applied while parsing a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request-line accepted (414 beyond).
    pub max_request_line: usize,
    /// Largest head (request-line + fields) accepted (431 beyond).
    pub max_head: usize,
    /// Most header fields accepted (431 beyond).
    pub max_fields: usize,
    /// Accept CONNECT (authority-form, no body); otherwise it is 501.
    pub allow_connect: bool,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_request_line: 8192,
            max_head: 32 * 1024,
            max_fields: 100,
            allow_connect: false,
        }
    }
}

/// A field, parameter or credential that must appear once appeared more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeated;

/// A parsed request head. Reuse one per connection: `parse_request` clears it.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// Method class.
    pub method: Method,
    /// Method token.
    pub method_span: Span,
    /// The whole request-target as received.
    pub target: Span,
    /// Its form.
    pub target_form: Target,
    /// Path and query in origin-form (for absolute-form, the part after the authority; empty
    /// means "/"; for asterisk-form, `*`).
    pub path: Span,
    /// Protocol version.
    pub version: Version,
    /// Header fields in order.
    pub fields: Vec<Field>,
    /// Bytes of the head, including any leading empty lines and the final CRLF.
    pub head_len: usize,
    /// How the body is delimited.
    pub framing: Framing,
    /// The Host field value, if any.
    pub host: Option<Span>,
    /// Connection options.
    pub connection: ConnectionOptions,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
}

impl RequestHead {
    /// An empty head with room for `max_fields` fields (the only allocation it ever makes).
    pub fn with_capacity(max_fields: usize) -> RequestHead {
        RequestHead {
            method: Method::Get,
            method_span: Span::default(),
            target: Span::default(),
            target_form: Target::Origin,
            path: Span::default(),
            version: Version::Http11,
            fields: Vec::with_capacity(max_fields),
            head_len: 0,
            framing: Framing::Length(0),
            host: None,
            connection: ConnectionOptions::default(),
            expect_continue: false,
        }
    }

    /// The path (and query) part of the target, `/` when an absolute-form target had none.
    pub fn path<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        if self.path.is_empty() {
            b"/"
        } else {
            self.path.get(buf)
        }
    }

    /// The path without the query.
    pub fn path_only<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        let p = self.path(buf);
        match memchr::memchr(b'?', p) {
            Some(i) => p.get(..i).unwrap_or(p),
            None => p,
        }
    }

    /// The authority the request is for: the absolute-form authority (or CONNECT's target),
    /// else the Host value.
    pub fn authority<'b>(&self, buf: &'b [u8]) -> Option<&'b [u8]> {
        match self.target_form {
            Target::Absolute { authority } => Some(authority.get(buf)),
            Target::Authority => Some(self.target.get(buf)),
            _ => self.host.map(|h| h.get(buf)),
        }
    }

    /// Whether the client wants the connection kept open after this exchange.
    pub fn keep_alive(&self) -> bool {
        match self.version {
            Version::Http11 => !self.connection.close,
            Version::Http10 => self.connection.keep_alive && !self.connection.close,
        }
    }

    /// The value of the first field named `name` (case-insensitive), for fields without a
    /// `FieldKind` of their own.
    pub fn value_of<'b>(&self, buf: &'b [u8], name: &[u8]) -> Option<&'b [u8]> {
        self.fields
            .iter()
            .find(|f| f.name.get(buf).eq_ignore_ascii_case(name))
            .map(|f| f.value.get(buf))
    }

    /// The value of the only field named `name`; `Err(Repeated)` when there are several (a
    /// field defined to appear once, RFC 9110 §5.3, is ambiguous when repeated: which copy
    /// counts depends on who reads it).
    pub fn only_value_of<'b>(
        &self,
        buf: &'b [u8],
        name: &[u8],
    ) -> Result<Option<&'b [u8]>, Repeated> {
        let mut found = None;
        for f in &self.fields {
            if f.name.get(buf).eq_ignore_ascii_case(name) {
                if found.is_some() {
                    return Err(Repeated);
                }
                found = Some(f.value.get(buf));
            }
        }
        Ok(found)
    }

    /// The first field of a kind.
    pub fn field(&self, kind: FieldKind) -> Option<&Field> {
        self.fields.iter().find(|f| f.kind == kind)
    }
}

/// A parsed response head. Reuse one per connection: `parse_response` clears it.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// Protocol version of the sender.
    pub version: Version,
    /// Status code (100–999).
    pub status: u16,
    /// Reason phrase (may be empty).
    pub reason: Span,
    /// Header fields in order.
    pub fields: Vec<Field>,
    /// Bytes of the head including the final CRLF.
    pub head_len: usize,
    /// Connection options.
    pub connection: ConnectionOptions,
    /// Content-Length, when present and valid.
    pub content_length: Option<u64>,
    /// Transfer-Encoding present.
    pub transfer_encoding: bool,
    /// Transfer-Encoding present with chunked as the final coding.
    pub chunked: bool,
    /// Transfer-Encoding names a coding other than chunked (gzip, …).
    pub other_codings: bool,
}

impl ResponseHead {
    /// An empty head with room for `max_fields` fields.
    pub fn with_capacity(max_fields: usize) -> ResponseHead {
        ResponseHead {
            version: Version::Http11,
            status: 0,
            reason: Span::default(),
            fields: Vec::with_capacity(max_fields),
            head_len: 0,
            connection: ConnectionOptions::default(),
            content_length: None,
            transfer_encoding: false,
            chunked: false,
            other_codings: false,
        }
    }

    /// Whether the upstream lets the connection be reused after this response.
    pub fn keep_alive(&self) -> bool {
        match self.version {
            Version::Http11 => !self.connection.close,
            Version::Http10 => self.connection.keep_alive && !self.connection.close,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FieldKind::{self, *};

    #[test]
    fn classifies_field_names_case_insensitively() {
        let table: &[(&[u8], FieldKind)] = &[
            (b"TE", Te),
            (b"Via", Via),
            (b"HOST", Host),
            (b"Date", Date),
            (b"expect", Expect),
            (b"Trailer", Trailer),
            (b"Upgrade", Upgrade),
            (b"Connection", Connection),
            (b"Keep-Alive", KeepAlive),
            (b"Content-Length", ContentLength),
            (b"Content_Length", FramingLookAlike),
            (b"X-Forwarded-For", XForwardedFor),
            (b"X-Forwarded-Host", XForwardedHost),
            (b"Transfer-Encoding", TransferEncoding),
            (b"transfer_encoding", FramingLookAlike),
            (b"X-Forwarded-Proto", XForwardedProto),
            (b"Proxy", Proxy),
            (b"Proxy-Connection", Proxy),
            (b"Proxy-Authorization", Proxy),
            (b"Proxyish", Other),
            (b"Accept", Other),
            (b"Content-Type", Other),
            (b"", Other),
        ];
        for (name, kind) in table {
            assert_eq!(
                FieldKind::of(name),
                *kind,
                "{}",
                String::from_utf8_lossy(name)
            );
        }
    }
}
