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
        Ok(Respond {
            reply: LocalReply::new(c.status, &c.content_type, c.body.as_bytes(), &[]),
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
            "unknown kind `respnd`, expected one of: api_key, authorize, cache, client_cert, compress, concurrency, cors, headers, ip, jwt, rate_limit, respond, validate, tap_test"
        );
    }
}
