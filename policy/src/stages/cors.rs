//! CORS (the Fetch standard's protocol): preflights (`OPTIONS` with
//! `Access-Control-Request-Method`) answered at the gateway with 204, or 403 when the origin,
//! method or a requested header is not allowed; actual requests from an allowed origin get
//! `Access-Control-Allow-Origin` (and `Vary: Origin`, credentials, exposed headers) on their
//! response. Requests without `Origin` pass untouched.
//!
//! ```toml
//! [[route.policy]]
//! kind = "cors"
//! allow_origins = ["https://app.example.com"]
//! allow_methods = ["GET", "POST"]
//! allow_headers = ["Authorization", "Content-Type"]
//! ```

use proto::{Method, RequestHead};
use serde::Deserialize;

use crate::exchange::Exchange;
use crate::stage::{Rejection, Stage, StageBuild, StageContext, Verdict};

/// `[[route.policy]] kind = "cors"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Allowed origins (`scheme://host[:port]`), or `["*"]` for any. Required.
    pub allow_origins: Vec<String>,
    /// Methods a preflight may ask for. Default ["GET", "HEAD", "POST"].
    #[serde(default = "default_methods")]
    pub allow_methods: Vec<String>,
    /// Request headers a preflight may ask for (case-insensitive). Default [].
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response headers scripts may read. Default [].
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Allow credentials (cookies, Authorization); not with `"*"`. Default false.
    #[serde(default)]
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight answer. Default "10m".
    #[serde(default = "default_max_age")]
    pub max_age: conf::Duration,
}

fn default_methods() -> Vec<String> {
    vec!["GET".into(), "HEAD".into(), "POST".into()]
}
fn default_max_age() -> conf::Duration {
    conf::Duration(std::time::Duration::from_secs(600))
}

/// The stage.
pub struct Cors {
    any_origin: bool,
    origins: Vec<Box<[u8]>>,
    methods: Vec<Box<[u8]>>,
    headers: Vec<Box<[u8]>>,
    credentials: bool,
    /// Preflight fields after Allow-Origin, rendered once.
    preflight: Vec<u8>,
    /// Fields for actual responses after Allow-Origin, rendered once.
    actual: Vec<u8>,
}

impl StageBuild for Cors {
    const KIND: &'static str = "cors";
    type Config = Config;

    fn build(c: Config, _ctx: &StageContext<'_>) -> Result<Cors, String> {
        let any_origin = c.allow_origins.iter().any(|o| o == "*");
        if c.allow_origins.is_empty() {
            return Err("allow_origins must list at least one origin (or \"*\")".into());
        }
        if any_origin && c.allow_credentials {
            return Err("allow_credentials cannot be combined with allow_origins = [\"*\"]".into());
        }
        for o in c.allow_origins.iter().filter(|o| *o != "*") {
            let ok = (o.starts_with("http://") || o.starts_with("https://"))
                && !o.ends_with('/')
                && o.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                return Err(format!(
                    "allow_origins: `{o}` is not an origin like https://app.example.com"
                ));
            }
        }
        for t in c
            .allow_methods
            .iter()
            .chain(&c.allow_headers)
            .chain(&c.expose_headers)
        {
            if !proto::chars::is_token(t.as_bytes()) {
                return Err(format!("`{t}` is not a method or header name"));
            }
        }
        let mut preflight = Vec::new();
        let put = |out: &mut Vec<u8>, name: &[u8], list: &[String]| {
            if !list.is_empty() {
                proto::write::put_field(out, name, list.join(", ").as_bytes());
            }
        };
        put(
            &mut preflight,
            b"Access-Control-Allow-Methods",
            &c.allow_methods,
        );
        put(
            &mut preflight,
            b"Access-Control-Allow-Headers",
            &c.allow_headers,
        );
        proto::write::put_field(
            &mut preflight,
            b"Access-Control-Max-Age",
            c.max_age.0.as_secs().to_string().as_bytes(),
        );
        let mut actual = Vec::new();
        put(
            &mut actual,
            b"Access-Control-Expose-Headers",
            &c.expose_headers,
        );
        for out in [&mut preflight, &mut actual] {
            if c.allow_credentials {
                proto::write::put_field(out, b"Access-Control-Allow-Credentials", b"true");
            }
            if !any_origin {
                proto::write::put_field(out, b"Vary", b"Origin");
            }
        }
        Ok(Cors {
            any_origin,
            origins: c
                .allow_origins
                .iter()
                .map(|o| o.as_bytes().into())
                .collect(),
            methods: c
                .allow_methods
                .iter()
                .map(|m| m.as_bytes().into())
                .collect(),
            headers: c
                .allow_headers
                .iter()
                .map(|h| h.to_ascii_lowercase().into_bytes().into())
                .collect(),
            credentials: c.allow_credentials,
            preflight,
            actual,
        })
    }
}

impl Cors {
    fn allow_origin_field(&self, out: &mut Vec<u8>, origin: &[u8]) {
        let value: &[u8] = if self.any_origin && !self.credentials {
            b"*"
        } else {
            origin
        };
        proto::write::put_field(out, b"Access-Control-Allow-Origin", value);
    }
}

impl Stage for Cors {
    fn on_request(&self, head: &RequestHead, buf: &[u8], ex: &mut Exchange) -> Verdict<'_> {
        // Origin and Access-Control-Request-Method appear once (RFC 6454 §7, Fetch): repeated,
        // which one the decision is about would depend on who reads them
        let (origin, requested) = match (
            head.only_value_of(buf, b"origin"),
            head.only_value_of(buf, b"access-control-request-method"),
        ) {
            (Ok(o), Ok(r)) => (o, r),
            _ => {
                return Verdict::Reject(Rejection::new(
                    400,
                    "cors.ambiguous",
                    "Origin or Access-Control-Request-Method is given more than once",
                ));
            }
        };
        let Some(origin) = origin else {
            return Verdict::Continue;
        };
        let allowed = self.any_origin || self.origins.iter().any(|o| **o == *origin);
        match (head.method, requested) {
            (Method::Options, Some(method)) => {
                // a list field: every copy counts
                let headers_ok = head
                    .fields
                    .iter()
                    .filter(|f| {
                        f.name
                            .get(buf)
                            .eq_ignore_ascii_case(b"access-control-request-headers")
                    })
                    .flat_map(|f| f.value.get(buf).split(|&b| b == b','))
                    .map(proto::chars::trim_ows)
                    .filter(|h| !h.is_empty())
                    .all(|h| self.headers.iter().any(|a| a.eq_ignore_ascii_case(h)));
                if !allowed || !self.methods.iter().any(|m| **m == *method) || !headers_ok {
                    return Verdict::Reject(Rejection::new(
                        403,
                        "cors.preflight",
                        "this cross-origin request is not allowed",
                    ));
                }
                let mut fields = Vec::with_capacity(256);
                self.allow_origin_field(&mut fields, origin);
                fields.extend_from_slice(&self.preflight);
                Verdict::Answer {
                    status: 204,
                    fields,
                }
            }
            _ => {
                if allowed {
                    self.allow_origin_field(&mut ex.response.add, origin);
                    ex.response.add.extend_from_slice(&self.actual);
                }
                Verdict::Continue
            }
        }
    }
}
