//! Request validation before anything reaches the upstream: allowed methods (405 with
//! `Allow`), a body size limit for the route (413; a Content-Length over it is refused up
//! front, a chunked body is cut off as soon as it grows past it, never buffered), allowed
//! content types (415), required headers (400), and query length (414) and parameter count
//! (400) limits.
//!
//! ```toml
//! [[route.policy]]
//! kind = "validate"
//! methods = ["GET", "POST"]
//! max_body = "1MiB"
//! content_types = ["application/json"]
//! ```

use proto::{Framing, RequestHead};
use serde::Deserialize;

use crate::exchange::Exchange;
use crate::pipeline::{Rejection, Stage, StageBuild, StageContext, Verdict};

/// `[[route.policy]] kind = "validate"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Allowed methods; others get 405 with `Allow`. Default: any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Largest request body. Default: the server's `max_body`.
    #[serde(default)]
    pub max_body: Option<conf::ByteSize>,
    /// Media types a request with a body may have (parameters ignored, case-insensitive); 415
    /// otherwise. Default: any.
    #[serde(default)]
    pub content_types: Vec<String>,
    /// Header fields every request must carry; 400 otherwise. Default: none.
    #[serde(default)]
    pub required_headers: Vec<String>,
    /// Longest query string (after `?`); 414 beyond. Default: no limit.
    #[serde(default)]
    pub max_query_length: Option<usize>,
    /// Most query parameters; 400 beyond. Default: no limit.
    #[serde(default)]
    pub max_query_params: Option<usize>,
}

/// The stage.
pub struct Validate {
    methods: Vec<Box<[u8]>>,
    allow: String,
    max_body: u64,
    content_types: Vec<Box<[u8]>>,
    required: Vec<Box<[u8]>>,
    max_query_length: usize,
    max_query_params: usize,
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(proto::chars::is_tchar)
}

impl StageBuild for Validate {
    const KIND: &'static str = "validate";
    type Config = Config;

    fn build(c: Config, _ctx: &StageContext<'_>) -> Result<Validate, String> {
        if let Some(m) = c.methods.iter().find(|m| !is_token(m)) {
            return Err(format!("methods: `{m}` is not a method"));
        }
        if let Some(h) = c.required_headers.iter().find(|h| !is_token(h)) {
            return Err(format!("required_headers: `{h}` is not a header name"));
        }
        for t in &c.content_types {
            let ok = t
                .split_once('/')
                .is_some_and(|(a, b)| is_token(a) && is_token(b));
            if !ok {
                return Err(format!(
                    "content_types: `{t}` is not a media type like application/json"
                ));
            }
        }
        Ok(Validate {
            allow: c.methods.join(", "),
            methods: c.methods.iter().map(|m| m.as_bytes().into()).collect(),
            max_body: c.max_body.map_or(u64::MAX, |b| b.0),
            content_types: c
                .content_types
                .iter()
                .map(|t| t.to_ascii_lowercase().into_bytes().into())
                .collect(),
            required: c
                .required_headers
                .iter()
                .map(|h| h.as_bytes().into())
                .collect(),
            max_query_length: c.max_query_length.unwrap_or(usize::MAX),
            max_query_params: c.max_query_params.unwrap_or(usize::MAX),
        })
    }
}

impl Stage for Validate {
    fn on_request(&self, head: &RequestHead, buf: &[u8], ex: &mut Exchange) -> Verdict<'_> {
        let method = head.method_span.get(buf);
        if !self.methods.is_empty() && !self.methods.iter().any(|m| **m == *method) {
            return Verdict::Reject(
                Rejection::new(405, "validate.method", "method not allowed on this route")
                    .with_field("Allow", &self.allow),
            );
        }
        let path = head.path(buf);
        if let Some(q) = path.iter().position(|&b| b == b'?') {
            let query = path.get(q + 1..).unwrap_or_default();
            if query.len() > self.max_query_length {
                return Verdict::Reject(Rejection::new(
                    414,
                    "validate.query_length",
                    "the query string is too long",
                ));
            }
            if self.max_query_params != usize::MAX
                && query
                    .split(|&b| b == b'&')
                    .filter(|p| !p.is_empty())
                    .count()
                    > self.max_query_params
            {
                return Verdict::Reject(Rejection::new(
                    400,
                    "validate.query_params",
                    "too many query parameters",
                ));
            }
        }
        for r in &self.required {
            if !head
                .fields
                .iter()
                .any(|f| f.name.get(buf).eq_ignore_ascii_case(r))
            {
                return Verdict::Reject(Rejection::new(
                    400,
                    "validate.required_header",
                    format!("the {} header is required", String::from_utf8_lossy(r)),
                ));
            }
        }
        let has_body = match head.framing {
            Framing::Length(n) => n > 0,
            Framing::Chunked => true,
            Framing::UntilClose => false,
        };
        if let Framing::Length(n) = head.framing
            && n > self.max_body
        {
            return Verdict::Reject(Rejection::new(
                413,
                "validate.body_size",
                "the request body is too large",
            ));
        }
        if has_body && !self.content_types.is_empty() {
            let media = head
                .fields
                .iter()
                .find(|f| f.name.get(buf).eq_ignore_ascii_case(b"content-type"))
                .map(|f| {
                    let v = f.value.get(buf);
                    proto::chars::trim_ows(v.split(|&b| b == b';').next().unwrap_or_default())
                });
            let ok =
                media.is_some_and(|m| self.content_types.iter().any(|t| t.eq_ignore_ascii_case(m)));
            if !ok {
                return Verdict::Reject(Rejection::new(
                    415,
                    "validate.content_type",
                    "the request's Content-Type is not accepted here",
                ));
            }
        }
        ex.max_body = ex.max_body.min(self.max_body);
        Verdict::Continue
    }
}
