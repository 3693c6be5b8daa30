//! Request validation before anything reaches the upstream: allowed methods (405 with
//! `Allow`), a body size limit for the route (413; a Content-Length over it is refused up
//! front, a chunked body is cut off as soon as it grows past it, never buffered), allowed
//! content types (415), required headers (400), query length (414) and parameter count
//! (400) limits, and JSON bodies checked against a JSON Schema (the body read whole up to
//! `json_max_body`; 400 when it is not JSON, 422 naming the failing JSON pointer).
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
use crate::stage::{Rejection, Stage, StageBuild, StageContext, Verdict};

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
    /// A JSON Schema file (relative to the config file) every request body must satisfy.
    /// Default: none.
    #[serde(default)]
    pub json_schema: Option<String>,
    /// Largest body read for `json_schema` (413 beyond). Default "1MiB".
    #[serde(default = "default_json_max")]
    pub json_max_body: conf::ByteSize,
}

fn default_json_max() -> conf::ByteSize {
    conf::ByteSize(1 << 20)
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
    schema: Option<jsonschema::Validator>,
    json_max_body: u64,
}

fn is_token(s: &str) -> bool {
    proto::chars::is_token(s.as_bytes())
}

/// True when the request carries a body.
fn has_body(head: &RequestHead) -> bool {
    match head.framing {
        Framing::Length(n) => n > 0,
        Framing::Chunked => true,
        Framing::UntilClose => false,
    }
}

impl StageBuild for Validate {
    const KIND: &'static str = "validate";
    type Config = Config;

    fn build(c: Config, ctx: &StageContext<'_>) -> Result<Validate, String> {
        let schema =
            match c.json_schema.as_deref().filter(|p| !p.is_empty()) {
                None => None,
                Some(f) => {
                    let path = ctx.dir.join(f);
                    let text = std::fs::read(&path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                    let doc: serde_json::Value = serde_json::from_slice(&text)
                        .map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
                    Some(jsonschema::validator_for(&doc).map_err(|e| {
                        format!("{}: not a usable JSON Schema: {e}", path.display())
                    })?)
                }
            };
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
            schema,
            json_max_body: c.json_max_body.0,
        })
    }
}

impl Stage for Validate {
    fn wants_body(&self, head: &RequestHead, _buf: &[u8]) -> Option<u64> {
        let has_body = has_body(head);
        (self.schema.is_some() && has_body).then_some(self.json_max_body)
    }

    fn on_body(
        &self,
        _head: &RequestHead,
        _buf: &[u8],
        body: &[u8],
        _ex: &mut Exchange,
    ) -> Verdict<'_> {
        let Some(schema) = &self.schema else {
            return Verdict::Continue;
        };
        let doc: serde_json::Value = match serde_json::from_slice(body) {
            Ok(d) => d,
            Err(e) => {
                return Verdict::Reject(Rejection::new(
                    400,
                    "validate.json_syntax",
                    format!("the body is not valid JSON: {e}"),
                ));
            }
        };
        match schema.validate(&doc) {
            Ok(()) => Verdict::Continue,
            Err(e) => {
                let pointer = e.instance_path().as_str();
                let at = if pointer.is_empty() { "/" } else { pointer };
                Verdict::Reject(Rejection::new(
                    422,
                    "validate.json_schema",
                    format!("the body does not match the schema at {at}: {e}"),
                ))
            }
        }
    }

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
            if head.value_of(buf, r).is_none() {
                return Verdict::Reject(Rejection::new(
                    400,
                    "validate.required_header",
                    format!("the {} header is required", String::from_utf8_lossy(r)),
                ));
            }
        }
        let has_body = has_body(head);
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
            // Content-Type appears once (RFC 9110 §8.3): repeated, the upstream may read
            // another one than the one judged here
            let Ok(content_type) = head.only_value_of(buf, b"content-type") else {
                return Verdict::Reject(Rejection::new(
                    400,
                    "validate.ambiguous",
                    "the Content-Type header is given more than once",
                ));
            };
            let media = content_type.map(|v| {
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
