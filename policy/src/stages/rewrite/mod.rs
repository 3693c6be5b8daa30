//! Rewrites what goes upstream: the path (strip or replace a prefix, a regex with captures,
//! or a whole new path from a template), query parameters (add, set, remove, rename) and
//! the `Host` field. Everything is compiled at load; a request whose path the rule does
//! not match goes on unchanged.
//!
//! ```toml
//! [[route.policy]]
//! kind = "rewrite"
//! regex = "^/users/(\\d+)/posts$"
//! replacement = "/posts?user=$1"
//! query_remove = ["debug"]
//! host = "posts.internal"
//! ```

use std::collections::BTreeMap;

use proto::RequestHead;
use serde::Deserialize;

mod path;
mod query;

use crate::exchange::Exchange;
use crate::stage::{Stage, StageBuild, StageContext, Verdict};
use crate::template::Template;
use path::PathRule;
use proto::path::split_query;
use query::QueryEdits;

/// `replace_prefix = { from = "/v1", to = "/v2" }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prefix {
    /// The prefix matched (whole segments: `/v1` matches `/v1` and `/v1/x`, not `/v10`).
    pub from: String,
    /// What replaces it.
    pub to: String,
}

/// `[[route.policy]] kind = "rewrite"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Removes this leading path prefix (whole segments). Default none.
    #[serde(default)]
    pub strip_prefix: Option<String>,
    /// Replaces a leading path prefix (whole segments). Default none.
    #[serde(default)]
    pub replace_prefix: Option<Prefix>,
    /// A regex matched against the path (without the query); with `replacement`. Default none.
    #[serde(default)]
    pub regex: Option<String>,
    /// What a `regex` match is replaced by: `$1`, `${name}` name its captures; a `?…` in it
    /// adds query parameters before the request's own. Default none.
    #[serde(default)]
    pub replacement: Option<String>,
    /// The whole new path, a template (`/items/${param.id}`). Default none.
    #[serde(default)]
    pub path: Option<String>,
    /// Query parameters appended, `{ name = "value template" }`. Default none.
    #[serde(default)]
    pub query_add: BTreeMap<String, String>,
    /// Query parameters replaced (or appended when absent). Default none.
    #[serde(default)]
    pub query_set: BTreeMap<String, String>,
    /// Query parameters removed (by name as received). Default none.
    #[serde(default)]
    pub query_remove: Vec<String>,
    /// Query parameters renamed, `{ old = "new" }`. Default none.
    #[serde(default)]
    pub query_rename: BTreeMap<String, String>,
    /// The `Host` sent upstream, a template (overrides the upstream's `host`). Default none.
    #[serde(default)]
    pub host: Option<String>,
}

/// The stage.
pub struct Rewrite {
    path: Option<PathRule>,
    query: QueryEdits,
    host: Option<Template>,
}

impl StageBuild for Rewrite {
    const KIND: &'static str = "rewrite";
    type Config = Config;

    fn build(mut c: Config, ctx: &StageContext<'_>) -> Result<Rewrite, String> {
        let path = PathRule::build(&mut c, ctx.params)?;
        let query = QueryEdits::build(
            c.query_add,
            c.query_set,
            &c.query_remove,
            &c.query_rename,
            ctx.params,
        )?;
        let host = match c.host {
            Some(h) => {
                let t = Template::parse(&h, ctx.params).map_err(|e| format!("host: {e}"))?;
                if t.literal().is_some_and(|v| !proto::chars::is_valid_host(v)) {
                    return Err(format!("host `{h}` is not a valid host"));
                }
                Some(t)
            }
            None => None,
        };
        Ok(Rewrite { path, query, host })
    }
}

impl Stage for Rewrite {
    fn on_request(&self, head: &RequestHead, buf: &[u8], ex: &mut Exchange) -> Verdict<'_> {
        let (path, query) = split_query(ex.target(head, buf));
        let new_path = self
            .path
            .as_ref()
            .and_then(|r| r.apply(path, head, buf, ex));
        if new_path.is_some() || !self.query.is_empty() {
            let mut target = match new_path {
                Some(p) => p,
                None => path.to_vec(),
            };
            // a query the rule wrote goes first, then the request's own
            let own = match memchr::memchr(b'?', &target) {
                Some(i) => {
                    let mut added = target.split_off(i + 1);
                    target.pop();
                    added.push(b'&');
                    added.extend_from_slice(query);
                    added
                }
                None => query.to_vec(),
            };
            let mut q = Vec::new();
            self.query.apply(&own, head, buf, ex, &mut q);
            if !q.is_empty() {
                target.push(b'?');
                target.extend_from_slice(&q);
            }
            ex.set_target(target);
        }
        if let Some(t) = &self.host {
            let mut v = Vec::new();
            t.render(head, buf, ex, &mut v);
            if proto::chars::is_valid_host(&v) {
                ex.edits.host = Some(v);
            }
        }
        Verdict::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a stage built from `text` (route captures `id`, `rest`) on `target`: what goes
    /// upstream, and the Host set.
    fn run(text: &str, target: &str) -> Result<(String, Option<String>), String> {
        let cfg: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        let params = ["id".to_string(), "rest".to_string()];
        let mut ctx = StageContext::alone(1, std::path::Path::new("."));
        ctx.params = &params;
        let stage = Rewrite::build(cfg, &ctx)?;
        let buf = format!("GET {target} HTTP/1.1\r\nHost: a.test\r\n\r\n").into_bytes();
        let mut head = RequestHead::with_capacity(4);
        proto::parse_request(&buf, &mut head, &proto::Limits::default())
            .map_err(|e| e.to_string())?;
        let mut ex = Exchange::default();
        assert_eq!(stage.on_request(&head, &buf, &mut ex), Verdict::Continue);
        let text = |v: &[u8]| String::from_utf8_lossy(v).to_string();
        Ok((
            text(ex.target(&head, &buf)),
            ex.edits.host.as_deref().map(text),
        ))
    }

    #[test]
    fn rewrites_paths_queries_and_host() -> Result<(), String> {
        for (rule, target, want) in [
            ("strip_prefix = \"/api\"", "/api/users?x=1", "/users?x=1"),
            ("strip_prefix = \"/api\"", "/api", "/"),
            ("strip_prefix = \"/api\"", "/apix/users", "/apix/users"),
            (
                "replace_prefix = { from = \"/v1\", to = \"/v2/beta\" }",
                "/v1/a",
                "/v2/beta/a",
            ),
            (
                "regex = '^/users/(\\d+)/posts$'\nreplacement = \"/posts?user=$1\"",
                "/users/42/posts?page=2",
                "/posts?user=42&page=2",
            ),
            (
                "regex = '^/u/(?P<name>[a-z]+)'\nreplacement = \"/people/${name}\"",
                "/u/bob/x",
                "/people/bob/x",
            ),
            (
                "regex = '^/users/(\\d+)$'\nreplacement = \"/x/$1\"",
                "/users/abc",
                "/users/abc",
            ),
            (
                "query_remove = [\"debug\"]\nquery_rename = { q = \"search\" }",
                "/s?q=rust&debug=1&page=2",
                "/s?search=rust&page=2",
            ),
            (
                "query_add = { src = \"gw\" }\nquery_set = { page = \"1\" }",
                "/s?page=9&page=3&q",
                "/s?q&page=1&src=gw",
            ),
            (
                "query_add = { ip = \"${client_ip}\" }",
                "/s",
                "/s?ip=0.0.0.0",
            ),
            (
                "query_add = { v = \"a&b=c d\" }",
                "/s",
                "/s?v=a%26b%3Dc%20d",
            ),
            ("query_add = { d = \"100%\" }", "/s", "/s?d=100%25"),
            // a capture in the query is one value: it adds no parameter
            (
                "regex = '^/u/([^/]+)$'\nreplacement = \"/p?u=$1&k=${1}$$\"",
                "/u/a&role=admin",
                "/p?u=a%26role%3Dadmin&k=a%26role%3Dadmin$",
            ),
            (
                "replace_prefix = { from = \"/v1\", to = \"/\" }",
                "/v1/a",
                "/a",
            ),
            (
                "replace_prefix = { from = \"/v1\", to = \"/\" }",
                "/v1",
                "/",
            ),
        ] {
            assert_eq!(run(rule, target)?.0, want, "{rule} on {target}");
        }
        Ok(())
    }

    #[test]
    fn a_path_template_reads_the_route_captures_and_host_is_set() -> Result<(), String> {
        // the captures of this fake route were never set: render empty, the rest stays
        let (target, host) = run(
            "path = \"/items/${param.id}/${method}\"\nhost = \"items.internal\"",
            "/x?y",
        )?;
        assert_eq!(
            (target.as_str(), host.as_deref()),
            ("/items//GET?y", Some("items.internal"))
        );
        Ok(())
    }

    #[test]
    fn refuses_rules_that_cannot_work() {
        for (text, want) in [
            (
                "strip_prefix = \"api\"",
                "strip_prefix `api` must start with `/`, not end with one, and hold path characters only",
            ),
            (
                "strip_prefix = \"/a\"\npath = \"/b\"",
                "at most one of strip_prefix, replace_prefix, regex and path",
            ),
            (
                "regex = \"(\"\nreplacement = \"/x\"",
                "regex: regex parse error:",
            ),
            ("regex = \"x\"", "`regex` and `replacement` go together"),
            (
                "query_remove = [\"a=b\"]",
                "query_remove `a=b` is not a query parameter name",
            ),
            ("host = \"bad host\"", "host `bad host` is not a valid host"),
            (
                "strip_prefix = \"/\"",
                "strip_prefix `/` matches every path: leave the rule out",
            ),
            (
                "path = \"/a?b=1\"",
                "path `/a?b=1` must start with `/` and hold no query",
            ),
            (
                "path = \"/${param.user}\"",
                "path: `${param.user}`: the route has no capture `user`",
            ),
        ] {
            let cfg: Config = match toml::from_str(text) {
                Ok(c) => c,
                Err(e) => panic!("{text}: {e}"),
            };
            let e = Rewrite::build(cfg, &StageContext::alone(1, std::path::Path::new(".")))
                .err()
                .unwrap_or_default();
            assert!(e.starts_with(want), "{text}: {e}");
        }
    }
}
