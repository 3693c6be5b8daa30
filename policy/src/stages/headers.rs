//! Sets, adds and removes request fields (before forwarding) and response fields (of the
//! upstream's answer). `*_set` replaces every received field of that name; `*_add` appends
//! one more; `*_remove` drops them all. Field lines are rendered once at load. Hop-by-hop and
//! framing fields (`Connection`, `Content-Length`, `Transfer-Encoding`, …), `Host` and a
//! response's `Date` are the gateway's to write: naming one is refused when the config is
//! checked. Values may hold placeholders filled per request (`crate::template`):
//! `"X-Client" = "${client_ip}"`, `"X-Tenant" = "${jwt.tenant}"`, `"X-User" = "${param.id}"`;
//! a rendered value that is not a valid field value (a claim with a control character) is
//! not sent.
//!
//! ```toml
//! [[route.policy]]
//! kind = "headers"
//! request_set = { "X-Env" = "prod" }
//! response_remove = ["Server", "X-Powered-By"]
//! ```

use std::collections::BTreeMap;

use proto::{FieldKind, RequestHead, ResponseHead};
use serde::Deserialize;

use crate::exchange::Exchange;
use crate::stage::{Stage, StageBuild, StageContext, Verdict};
use crate::template::Template;

/// `[[route.policy]] kind = "headers"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Request fields replaced (or added when absent), `{ Name = "value" }`. Default none.
    #[serde(default)]
    pub request_set: BTreeMap<String, String>,
    /// Request fields added beside any received ones. Default none.
    #[serde(default)]
    pub request_add: BTreeMap<String, String>,
    /// Request fields removed. Default none.
    #[serde(default)]
    pub request_remove: Vec<String>,
    /// Response fields replaced (or added when absent). Default none.
    #[serde(default)]
    pub response_set: BTreeMap<String, String>,
    /// Response fields added beside the upstream's. Default none.
    #[serde(default)]
    pub response_add: BTreeMap<String, String>,
    /// Response fields removed. Default none.
    #[serde(default)]
    pub response_remove: Vec<String>,
}

/// One direction's changes, ready to apply.
#[derive(Debug, Default)]
struct Changes {
    /// Names whose received fields are dropped (set and remove).
    drop: Vec<Box<[u8]>>,
    /// Field lines added (set and add) whose values are fixed.
    add: Vec<u8>,
    /// Fields added whose values are rendered per request.
    templated: Vec<(Box<[u8]>, Template)>,
}

impl Changes {
    fn build(
        set: &BTreeMap<String, String>,
        add: &BTreeMap<String, String>,
        remove: &[String],
        what: &str,
        params: &[String],
    ) -> Result<Changes, String> {
        let mut c = Changes::default();
        for name in set.keys().chain(remove) {
            check_name(name, what)?;
            c.drop.push(name.as_bytes().into());
        }
        for (name, value) in set.iter().chain(add) {
            check_name(name, what)?;
            if !value.bytes().all(proto::chars::is_field_value)
                || value.starts_with([' ', '\t'])
                || value.ends_with([' ', '\t'])
            {
                return Err(format!(
                    "{what} `{name}`: the value is not a valid field value"
                ));
            }
            let t = Template::parse(value, params).map_err(|e| format!("{what} `{name}`: {e}"))?;
            match t.literal() {
                Some(v) => proto::write::put_field(&mut c.add, name.as_bytes(), v),
                None => c.templated.push((name.as_bytes().into(), t)),
            }
        }
        Ok(c)
    }

    /// Drops and adds; `request` is the request the templates read.
    fn apply(
        &self,
        fields: &[proto::Field],
        buf: &[u8],
        request: Option<(&RequestHead, &[u8])>,
        ex: &mut Exchange,
        response: bool,
    ) {
        let mut rendered = Vec::new();
        if let Some((head, rbuf)) = request {
            for (name, t) in &self.templated {
                let mut value = Vec::new();
                t.render(head, rbuf, ex, &mut value);
                let v = value.trim_ascii();
                if v.iter().all(|&b| proto::chars::is_field_value(b)) {
                    proto::write::put_field(&mut rendered, name, v);
                }
            }
        }
        let edits = if response {
            &mut ex.response
        } else {
            &mut ex.edits.fields
        };
        for name in &self.drop {
            edits.drop_named(fields, buf, name);
        }
        edits.add.extend_from_slice(&self.add);
        edits.add.extend_from_slice(&rendered);
    }
}

/// Refuses names that are not tokens or that only the gateway may write.
fn check_name(name: &str, what: &str) -> Result<(), String> {
    if !proto::chars::is_token(name.as_bytes()) {
        return Err(format!("{what} `{name}` is not a field name"));
    }
    let kind = FieldKind::of(name.as_bytes());
    if kind.is_hop_by_hop() || matches!(kind, FieldKind::Host | FieldKind::Expect) {
        return Err(format!(
            "{what} `{name}`: hop-by-hop, framing and Host fields are written by the gateway"
        ));
    }
    // RFC 9110 §6.6.1: the gateway adds Date to a response that has none; removing or
    // replacing it here would send none, or two
    if what == "response" && kind == FieldKind::Date {
        return Err(format!("response `{name}`: Date is written by the gateway"));
    }
    Ok(())
}

/// The stage.
pub struct Headers {
    request: Changes,
    response: Changes,
    /// Response fields whose values come from the request, added to `ex.response` when
    /// the request is seen (so they are on every answer, forwarded or made here).
    early: Changes,
}

impl StageBuild for Headers {
    const KIND: &'static str = "headers";
    type Config = Config;

    fn build(c: Config, ctx: &StageContext<'_>) -> Result<Headers, String> {
        let p = ctx.params;
        let request = Changes::build(
            &c.request_set,
            &c.request_add,
            &c.request_remove,
            "request",
            p,
        )?;
        let response = Changes::build(
            &c.response_set,
            &c.response_add,
            &c.response_remove,
            "response",
            p,
        )?;
        Ok(Headers {
            // a response value rendered from the request is rendered when the request is
            // seen (the response hook has no request head)
            early: Changes {
                templated: response.templated,
                ..Changes::default()
            },
            request,
            response: Changes {
                templated: Vec::new(),
                ..response
            },
        })
    }
}

impl Stage for Headers {
    fn on_request(&self, head: &RequestHead, buf: &[u8], ex: &mut Exchange) -> Verdict<'_> {
        self.request
            .apply(&head.fields, buf, Some((head, buf)), ex, false);
        if !self.early.templated.is_empty() {
            self.early.apply(&[], buf, Some((head, buf)), ex, true);
        }
        Verdict::Continue
    }

    fn on_response(&self, head: &ResponseHead, buf: &[u8], ex: &mut Exchange) {
        self.response.apply(&head.fields, buf, None, ex, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(toml_text: &str) -> Result<Headers, String> {
        let cfg: Config = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        let ctx = StageContext::alone(1, std::path::Path::new("."));
        Headers::build(cfg, &ctx)
    }

    #[test]
    fn refuses_fields_only_the_gateway_writes_and_bad_values() {
        for (text, want) in [
            (
                "request_set = { Connection = \"x\" }",
                "request `Connection`: hop-by-hop, framing and Host fields are written by the gateway",
            ),
            (
                "response_remove = [\"Transfer-Encoding\"]",
                "response `Transfer-Encoding`: hop-by-hop, framing and Host fields are written by the gateway",
            ),
            (
                "request_add = { Host = \"x\" }",
                "request `Host`: hop-by-hop, framing and Host fields are written by the gateway",
            ),
            (
                "response_add = { \"Content_Length\" = \"1\" }",
                "response `Content_Length`: hop-by-hop, framing and Host fields are written by the gateway",
            ),
            (
                "response_remove = [\"date\"]",
                "response `date`: Date is written by the gateway",
            ),
            (
                "request_set = { \"Bad Name\" = \"x\" }",
                "request `Bad Name` is not a field name",
            ),
            (
                "response_set = { X-A = \"a\\nb\" }",
                "response `X-A`: the value is not a valid field value",
            ),
        ] {
            assert_eq!(build(text).err().as_deref(), Some(want), "{text}");
        }
    }

    #[test]
    fn set_replaces_add_appends_remove_drops() -> Result<(), String> {
        let stage = build(
            "request_set = { X-Env = \"prod\" }\nrequest_add = { X-Tag = \"gw\" }\nrequest_remove = [\"x-internal\"]",
        )?;
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\nX-Env: dev\r\nX-Internal: 1\r\nX-Tag: old\r\n\r\n";
        let mut head = RequestHead::with_capacity(8);
        proto::parse_request(buf, &mut head, &proto::Limits::default())
            .map_err(|e| e.to_string())?;
        let mut ex = Exchange::default();
        assert_eq!(stage.on_request(&head, buf, &mut ex), Verdict::Continue);
        // fields 1 (X-Env) and 2 (X-Internal) dropped; X-Tag kept
        assert!(ex.edits.fields.is_dropped(1) && ex.edits.fields.is_dropped(2));
        assert!(!ex.edits.fields.is_dropped(0) && !ex.edits.fields.is_dropped(3));
        assert_eq!(ex.edits.fields.add, b"X-Env: prod\r\nX-Tag: gw\r\n");
        Ok(())
    }
}
