//! OAuth2 token introspection (RFC 7662): opaque bearer tokens are checked at the
//! authorization server's introspection endpoint, the gateway authenticating as a client
//! (HTTP Basic), and each answer is cached per shard — an active one until the token's `exp`
//! (at most `max_ttl`), an inactive one for `negative_ttl` — so a busy token costs one
//! introspection per shard per lifetime. Requests for a token not yet known wait (one
//! introspection, however many carry it). The identity is the answer's `sub` (or
//! `client_id`, `username`), its `scope` the scopes, `client_id` and friends the claims the
//! `subscription`, `authorize` and `headers` stages read.
//!
//! 401 with `WWW-Authenticate: Bearer` without a token, with `error="invalid_token"` for an
//! inactive or expired one, a refresh token, another `audience`'s, or one naming no consumer
//! a header can carry; 503 + `Retry-After` when the server does not answer usably.
//!
//! ```toml
//! [[route.policy]]
//! kind = "introspect"
//! endpoint = "https://idp.example/oauth2/introspect"
//! client_id = "gateway"
//! client_secret_file = "introspect.secret"
//! ```

mod answer;
mod task;

use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proto::RequestHead;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::exchange::Exchange;
use crate::stage::{Figure, Rejection, Stage, StageBuild, StageContext, Verdict};
use crate::task::Task;
use answer::{ConsumerField, Entry};
use task::{Endpoint, Introspector, Shared};

/// `[[route.policy]] kind = "introspect"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The introspection endpoint, `http(s)://host[:port]/path` (the host resolved once, at
    /// start). Required.
    pub endpoint: String,
    /// CA bundle (PEM, relative to the config file) an `https` endpoint is verified against.
    /// Default: the public web PKI roots.
    #[serde(default)]
    pub endpoint_ca: Option<String>,
    /// The gateway's client id at the authorization server. Required.
    pub client_id: String,
    /// A file holding its client secret, relative to the config file. Required.
    pub client_secret_file: String,
    /// Which answer field is the consumer: "sub" (then `client_id` when absent),
    /// "client_id" or "username". Default "sub".
    #[serde(default = "default_consumer")]
    pub consumer: String,
    /// Audiences a token must be for (the answer's `aud`, a string or a list, names one);
    /// empty: any. Default [].
    #[serde(default)]
    pub audience: Vec<String>,
    /// Header that carries the consumer upstream (incoming copies are dropped first).
    /// Default "X-Consumer-Id"; "" for none.
    #[serde(default = "default_consumer_header")]
    pub consumer_header: String,
    /// An active answer is kept until the token's `exp`, and at most this long. Default "5m".
    #[serde(default = "default_max_ttl")]
    pub max_ttl: conf::Duration,
    /// An inactive answer is kept this long. Default "10s".
    #[serde(default = "default_negative_ttl")]
    pub negative_ttl: conf::Duration,
    /// Answers kept per shard (least recently used dropped). Default 10000.
    #[serde(default = "default_cache")]
    pub cache_size: usize,
    /// Time allowed for one introspection. Default "2s".
    #[serde(default = "default_timeout")]
    pub timeout: conf::Duration,
    /// Longer tokens are refused unread. Default 4096.
    #[serde(default = "default_max_token")]
    pub max_token_bytes: usize,
}

fn default_consumer() -> String {
    "sub".into()
}
fn default_consumer_header() -> String {
    "X-Consumer-Id".into()
}
fn default_max_ttl() -> conf::Duration {
    conf::Duration(Duration::from_secs(300))
}
fn default_negative_ttl() -> conf::Duration {
    conf::Duration(Duration::from_secs(10))
}
fn default_cache() -> usize {
    10_000
}
fn default_timeout() -> conf::Duration {
    conf::Duration(Duration::from_secs(2))
}
fn default_max_token() -> usize {
    4096
}

/// The stage.
pub struct Introspect {
    shared: Rc<Shared>,
    task: Rc<Introspector>,
    consumer_header: Box<[u8]>,
    max_ttl: Duration,
    max_token: usize,
}

impl StageBuild for Introspect {
    const KIND: &'static str = "introspect";
    type Config = Config;

    fn build(c: Config, ctx: &StageContext<'_>) -> Result<Introspect, String> {
        use base64::Engine;
        let (addr, host, path, https) = crate::http_url::parse("endpoint", &c.endpoint)?;
        if c.endpoint_ca.is_some() && !https {
            return Err("endpoint_ca is for an https endpoint".into());
        }
        let tls = https.then(|| c.endpoint_ca.map(|p| Rc::new(ctx.dir.join(p))));
        let secret_path = ctx.dir.join(&c.client_secret_file);
        let secret = std::fs::read_to_string(&secret_path)
            .map_err(|e| format!("client_secret_file {}: {e}", secret_path.display()))?;
        let secret = secret.trim_end_matches(['\r', '\n']);
        if secret.is_empty() || c.client_id.is_empty() {
            return Err("client_id and the client secret may not be empty".into());
        }
        // RFC 6749 §2.3.1: both form-encoded, then Basic
        let pair = format!("{}:{}", answer::form(&c.client_id), answer::form(secret));
        let basic = base64::engine::general_purpose::STANDARD.encode(pair);
        let fields = format!(
            "Authorization: Basic {basic}\r\nContent-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\n"
        );
        let field = match c.consumer.as_str() {
            "sub" => ConsumerField::Sub,
            "client_id" => ConsumerField::ClientId,
            "username" => ConsumerField::Username,
            other => {
                return Err(format!(
                    "consumer = {other:?}: use \"sub\", \"client_id\" or \"username\""
                ));
            }
        };
        let header_ok =
            c.consumer_header.is_empty() || proto::chars::is_token(c.consumer_header.as_bytes());
        if !header_ok {
            return Err(format!(
                "`{}` is not a valid header name",
                c.consumer_header
            ));
        }
        if c.max_ttl.0 < Duration::from_secs(1) || c.timeout.0 < Duration::from_millis(10) {
            return Err("max_ttl is at least 1s, timeout at least 10ms".into());
        }
        let shared = Rc::new(Shared::new(c.cache_size));
        let task = Rc::new(Introspector {
            shared: shared.clone(),
            endpoint: Endpoint {
                addr,
                host: host.into(),
                path: path.into(),
                tls,
            },
            fields: fields.into_bytes().into(),
            field,
            audience: c.audience,
            negative_ttl: c.negative_ttl.0,
            timeout: c.timeout.0,
        });
        Ok(Introspect {
            shared,
            task,
            consumer_header: c.consumer_header.as_bytes().into(),
            max_ttl: c.max_ttl.0,
            max_token: c.max_token_bytes,
        })
    }
}

fn unauthorized(reason: &'static str, detail: &'static str) -> Verdict<'static> {
    Verdict::Reject(
        Rejection::new(401, reason, detail)
            .with_field("WWW-Authenticate", "Bearer error=\"invalid_token\""),
    )
}

fn unavailable(detail: &'static str) -> Verdict<'static> {
    Verdict::Reject(
        Rejection::new(503, "introspect.unavailable", detail).with_field("Retry-After", "1"),
    )
}

/// The bearer token of `Authorization`, when it has one (`Err`: the field is repeated).
fn bearer<'b>(head: &RequestHead, buf: &'b [u8]) -> Result<Option<&'b [u8]>, ()> {
    let Some(v) = head.only_value_of(buf, b"authorization").map_err(|_| ())? else {
        return Ok(None);
    };
    let Some(sp) = v.iter().position(|&b| b == b' ') else {
        return Ok(None);
    };
    let (scheme, rest) = v.split_at(sp);
    Ok(scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| proto::chars::trim_ows(rest)))
}

impl Stage for Introspect {
    fn tasks(&self) -> Vec<Rc<dyn Task>> {
        vec![self.task.clone() as Rc<dyn Task>]
    }

    fn on_request(&self, head: &RequestHead, buf: &[u8], ex: &mut Exchange) -> Verdict<'_> {
        if !self.consumer_header.is_empty() {
            ex.edits
                .fields
                .drop_named(&head.fields, buf, &self.consumer_header);
        }
        let token = match bearer(head, buf) {
            Ok(Some(t)) if !t.is_empty() => t,
            Ok(_) => {
                return Verdict::Reject(
                    Rejection::new(401, "introspect.missing", "a bearer token is required")
                        .with_field("WWW-Authenticate", "Bearer"),
                );
            }
            Err(()) => {
                return Verdict::Reject(
                    Rejection::new(
                        400,
                        "introspect.ambiguous",
                        "Authorization is given more than once",
                    )
                    .with_field("WWW-Authenticate", "Bearer error=\"invalid_request\""),
                );
            }
        };
        let Some(token) = std::str::from_utf8(token)
            .ok()
            .filter(|t| t.len() <= self.max_token)
        else {
            return unauthorized("introspect.malformed", "the token is too long or not text");
        };
        let digest: task::Digest = Sha256::digest(token.as_bytes()).into();
        let wall = ex
            .wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        match self.shared.get(&digest) {
            Some(Entry::Active { identity, exp, at }) => {
                if exp.is_some_and(|e| wall >= e) {
                    return unauthorized("introspect.expired", "the token has expired");
                }
                if ex.now.saturating_duration_since(at) < self.max_ttl {
                    if !self.consumer_header.is_empty() {
                        ex.edits
                            .fields
                            .add(&self.consumer_header, identity.consumer.as_bytes());
                    }
                    ex.identity = Some(identity);
                    return Verdict::Continue;
                }
            }
            Some(Entry::Inactive { until }) if ex.now < until => {
                return unauthorized("introspect.inactive", "the token is not active");
            }
            Some(Entry::Failed { until }) if ex.now < until => {
                return unavailable("the authorization server did not answer the introspection");
            }
            _ => {}
        }
        // not known (or no longer): ask, and wait for the answer — a bounded number of times
        if ex.waits >= crate::stage::MAX_WAITS {
            return unavailable("the introspection took too long");
        }
        let limit = self.task.timeout + Duration::from_millis(500);
        match self.shared.ask(token, digest, limit) {
            Some(gate) => Verdict::Wait(gate),
            None => unavailable("too many tokens wait for introspection"),
        }
    }

    fn figures(&self) -> Vec<Figure> {
        vec![
            Figure::labelled("introspections", self.shared.asked.get(), &[]),
            Figure::labelled("introspection_failures", self.shared.failed.get(), &[]),
            Figure {
                name: "tokens_cached",
                value: self.shared.cache.borrow().len() as u64,
                gauge: true,
                labels: Vec::new(),
            },
        ]
    }
}
