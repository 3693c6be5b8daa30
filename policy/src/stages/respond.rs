//! Answers from the gateway with a fixed reply (health checks, maintenance pages, stubs).
//! The reply is rendered once at load.
//!
//! ```toml
//! [[route.policy]]
//! kind = "respond"
//! status = 200
//! body = "ok\n"
//! ```

use proto::RequestHead;
use serde::Deserialize;

use crate::exchange::Exchange;
use crate::reply::LocalReply;
use crate::stage::{Stage, StageBuild, StageContext, Verdict};

/// `[[route.policy]] kind = "respond"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Status code (200–599). Default 200.
    #[serde(default = "default_status")]
    pub status: u16,
    /// Body. Default empty.
    #[serde(default)]
    pub body: String,
    /// Content-Type. Default `text/plain; charset=utf-8`.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// More response fields, `{ Name = "value" }` (not framing, hop-by-hop or Date).
    /// Default none.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
}

fn default_status() -> u16 {
    200
}

fn default_content_type() -> String {
    "text/plain; charset=utf-8".to_string()
}

/// The stage: one pre-rendered reply.
pub struct Respond {
    reply: LocalReply,
}

impl StageBuild for Respond {
    const KIND: &'static str = "respond";
    type Config = Config;

    fn build(c: Config, _ctx: &StageContext<'_>) -> Result<Respond, String> {
        if !(200..=599).contains(&c.status) || c.status == 204 || c.status == 304 {
            return Err(format!(
                "status {} is not allowed: expected 200–599 (not 204 or 304)",
                c.status
            ));
        }
        if c.content_type
            .bytes()
            .any(|b| !proto::chars::is_field_value(b))
        {
            return Err("content_type has a control character".to_string());
        }
        let mut extra = Vec::with_capacity(c.headers.len());
        for (name, value) in &c.headers {
            let kind = proto::FieldKind::of(name.as_bytes());
            if !proto::chars::is_token(name.as_bytes())
                || kind.is_hop_by_hop()
                || kind == proto::FieldKind::Date
                || name.eq_ignore_ascii_case("content-type")
            {
                return Err(format!(
                    "headers `{name}`: not a field name, or one the gateway writes (framing, hop-by-hop, Date, Content-Type: use content_type)"
                ));
            }
            if !value.bytes().all(proto::chars::is_field_value) || value.trim() != value {
                return Err(format!(
                    "headers `{name}`: the value is not a valid field value"
                ));
            }
            extra.push((name.as_str(), value.as_str()));
        }
        Ok(Respond {
            reply: LocalReply::new(c.status, &c.content_type, c.body.as_bytes(), &extra),
        })
    }
}

impl Stage for Respond {
    fn on_request(&self, _head: &RequestHead, _buf: &[u8], _ex: &mut Exchange) -> Verdict<'_> {
        Verdict::Respond(&self.reply)
    }
}

#[cfg(test)]
mod tests {
    use crate::stage::StageContext;

    fn build_stage(t: toml::Table) -> Result<crate::stages::AnyStage, String> {
        crate::stages::build_stage(t, &StageContext::alone(1, std::path::Path::new(".")))
    }

    fn table(text: &str) -> toml::Table {
        match toml::from_str(text) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    fn error(text: &str) -> String {
        match build_stage(table(text)) {
            Ok(_) => panic!("`{text}` should not build"),
            Err(e) => e,
        }
    }

    #[test]
    fn builds_and_rejects() {
        assert!(build_stage(table("kind = \"respond\"\nstatus = 503\nbody = \"down\"")).is_ok());
        assert_eq!(
            error("kind = \"respond\"\nstatus = 99"),
            "kind = \"respond\": status 99 is not allowed: expected 200–599 (not 204 or 304)"
        );
        let e = error("kind = \"respond\"\nstatuss = 200");
        assert!(
            e.starts_with("kind = \"respond\": unknown field `statuss`, expected one of"),
            "{e}"
        );
        assert_eq!(
            error("kind = \"respnd\""),
            "unknown kind `respnd`, expected one of: ai, api_key, authorize, cache, client_cert, compress, concurrency, cors, headers, introspect, ip, json_fields, jwt, quota, rate_limit, redirect, respond, rewrite, subscription, validate, tap_test"
        );
    }
}
