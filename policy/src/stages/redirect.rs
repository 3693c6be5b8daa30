//! Answers with a redirect whose `Location` is a template of the request (`${path}`,
//! `${query}`, `${param.*}`, `${host}`, …), so a moved API or a forced host answers here
//! without an upstream.
//!
//! ```toml
//! [[route.policy]]
//! kind = "redirect"
//! status = 308
//! location = "https://new.example.com/v2${path}"
//! ```

use std::rc::Rc;

use proto::RequestHead;
use serde::Deserialize;

use crate::exchange::Exchange;
use crate::reply::LocalReply;
use crate::stage::{Stage, StageBuild, StageContext, Verdict};
use crate::template::{Spot, Template};

/// `[[route.policy]] kind = "redirect"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// 301, 302, 303, 307 or 308. Default 302.
    #[serde(default = "default_status")]
    pub status: u16,
    /// Where to: a URI reference, a template.
    pub location: String,
}

fn default_status() -> u16 {
    302
}

/// The stage.
pub struct Redirect {
    status: u16,
    location: Template,
    /// The whole reply when the location has no placeholder.
    fixed: Option<LocalReply>,
    /// The template itself names another host (`https://…`, `//…`).
    absolute: bool,
}

impl StageBuild for Redirect {
    const KIND: &'static str = "redirect";
    type Config = Config;

    fn build(c: Config, ctx: &StageContext<'_>) -> Result<Redirect, String> {
        if ![301, 302, 303, 307, 308].contains(&c.status) {
            return Err(format!(
                "status {} is not a redirect: expected 301, 302, 303, 307 or 308",
                c.status
            ));
        }
        if c.location.is_empty()
            || !c
                .location
                .bytes()
                .all(|b| proto::chars::is_uri(b) || b"{}".contains(&b))
        {
            return Err(format!("location `{}` is not a URI reference", c.location));
        }
        let location = Template::parse(&c.location, ctx.params)?;
        let fixed = location.literal().map(|_| reply(c.status, &c.location));
        Ok(Redirect {
            status: c.status,
            absolute: c.location.starts_with("//") || c.location.contains("://"),
            location,
            fixed,
        })
    }
}

fn reply(status: u16, location: &str) -> LocalReply {
    LocalReply::new(
        status,
        "text/plain; charset=utf-8",
        b"",
        &[("Location", location)],
    )
}

impl Stage for Redirect {
    fn on_request(&self, head: &RequestHead, buf: &[u8], ex: &mut Exchange) -> Verdict<'_> {
        if let Some(r) = &self.fixed {
            return Verdict::Respond(r);
        }
        let mut raw = Vec::with_capacity(64);
        // what a claim or a header brings in is percent-encoded: Location stays one valid
        // field value, and a value adds no segment or parameter
        self.location
            .render_target(head, buf, ex, &mut raw, &mut Spot::Path);
        // `${path}` of `//evil.example/x` must not make a network-path reference: the
        // location leaves this host only when the template says so
        if !self.absolute && raw.starts_with(b"//") {
            let slashes = raw.iter().take_while(|&&b| b == b'/').count();
            raw.drain(..slashes - 1);
        }
        let location: String = raw.iter().map(|&b| char::from(b)).collect();
        Verdict::Serve(Rc::new(reply(self.status, &location)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(text: &str) -> Result<Redirect, String> {
        let cfg: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        let params = ["id".to_string()];
        let mut ctx = StageContext::alone(1, std::path::Path::new("."));
        ctx.params = &params;
        Redirect::build(cfg, &ctx)
    }

    #[test]
    fn refuses_what_is_not_a_redirect() {
        for (text, want) in [
            (
                "status = 200\nlocation = \"/x\"",
                "status 200 is not a redirect: expected 301, 302, 303, 307 or 308",
            ),
            (
                "location = \"/a b\"",
                "location `/a b` is not a URI reference",
            ),
            (
                "location = \"/${param.user}\"",
                "`${param.user}`: the route has no capture `user` (it captures: id)",
            ),
        ] {
            assert_eq!(build(text).err().as_deref(), Some(want), "{text}");
        }
    }

    #[test]
    fn a_path_never_makes_the_location_another_host() -> Result<(), String> {
        let stage = build("location = \"${path}/\"")?;
        let buf = b"GET //evil.test/x HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut head = RequestHead::with_capacity(4);
        proto::parse_request(buf, &mut head, &proto::Limits::default())
            .map_err(|e| e.to_string())?;
        let Verdict::Serve(r) = stage.on_request(&head, buf, &mut Exchange::default()) else {
            return Err("no reply".into());
        };
        let text = String::from_utf8_lossy(&r.head).to_string();
        assert!(text.contains("\r\nLocation: /evil.test/x/\r\n"), "{text}");
        Ok(())
    }

    #[test]
    fn renders_the_location_per_request() -> Result<(), String> {
        let stage = build("status = 301\nlocation = \"https://new.test/v2${path}?was=${host}\"")?;
        let buf = b"GET /old/page?q=1 HTTP/1.1\r\nHost: old.test\r\n\r\n";
        let mut head = RequestHead::with_capacity(4);
        proto::parse_request(buf, &mut head, &proto::Limits::default())
            .map_err(|e| e.to_string())?;
        let mut ex = Exchange::default();
        let Verdict::Serve(r) = stage.on_request(&head, buf, &mut ex) else {
            return Err("no reply".into());
        };
        assert_eq!(r.status, 301);
        let text = String::from_utf8_lossy(&r.head).to_string();
        assert!(
            text.contains("\r\nLocation: https://new.test/v2/old/page?was=old.test\r\n"),
            "{text}"
        );
        Ok(())
    }
}
