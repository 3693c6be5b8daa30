//! Values with `${…}` placeholders filled per request (header values, rewritten paths,
//! redirect locations): parsed once at load into literal pieces and typed slots, rendered
//! from the request head and the exchange without a lookup by name.

use std::io::Write as _;

use proto::RequestHead;

use crate::exchange::Exchange;

/// The placeholders a template may name, for messages.
pub const NAMES: &str = "client_ip, request_id, method, host, target, path, query, consumer, \
param.<route capture>, jwt.<claim>";

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Bytes copied as they are.
    Text(Box<[u8]>),
    /// The client's address for policy (`Exchange::client_ip`).
    ClientIp,
    /// The request id.
    RequestId,
    /// The method token.
    Method,
    /// The client's `Host` (or absolute-form authority).
    Host,
    /// The current target (after earlier rewrites): path and query.
    Target,
    /// The current path (after earlier rewrites), without the query.
    Path,
    /// The current query, without `?` (empty when none).
    Query,
    /// The consumer an authentication stage established.
    Consumer,
    /// A route capture, by its index in the route's pattern.
    Param(usize),
    /// A top-level JWT claim (strings, numbers and booleans).
    Claim(Box<str>),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; `params` are the route's capture names (in pattern order).
    pub fn parse(text: &str, params: &[String]) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find("${") {
            let (lit, tail) = rest.split_at(at);
            if !lit.is_empty() {
                parts.push(Part::Text(lit.as_bytes().into()));
            }
            let tail = tail.get(2..).unwrap_or_default();
            let end = tail
                .find('}')
                .ok_or_else(|| format!("`${{` without a closing `}}` in `{text}`"))?;
            let name = tail.get(..end).unwrap_or_default();
            parts.push(Self::slot(name, params)?);
            rest = tail.get(end + 1..).unwrap_or_default();
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.as_bytes().into()));
        }
        Ok(Template { parts })
    }

    fn slot(name: &str, params: &[String]) -> Result<Part, String> {
        Ok(match name {
            "client_ip" => Part::ClientIp,
            "request_id" => Part::RequestId,
            "method" => Part::Method,
            "host" => Part::Host,
            "target" => Part::Target,
            "path" => Part::Path,
            "query" => Part::Query,
            "consumer" => Part::Consumer,
            _ => {
                if let Some(p) = name.strip_prefix("param.") {
                    let i = params.iter().position(|n| n == p).ok_or_else(|| {
                        let known = if params.is_empty() {
                            "the route captures none".to_string()
                        } else {
                            format!("it captures: {}", params.join(", "))
                        };
                        format!("`${{{name}}}`: the route has no capture `{p}` ({known})")
                    })?;
                    Part::Param(i)
                } else if let Some(c) = name.strip_prefix("jwt.").filter(|c| !c.is_empty()) {
                    Part::Claim(c.into())
                } else {
                    return Err(format!(
                        "unknown placeholder `${{{name}}}`, expected one of: {NAMES}"
                    ));
                }
            }
        })
    }

    /// The whole text when it has no placeholder.
    pub fn literal(&self) -> Option<&[u8]> {
        match self.parts.as_slice() {
            [] => Some(b""),
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// Appends the rendered value to `out`. A slot with no value (no JWT, no such claim)
    /// renders empty.
    pub fn render(&self, head: &RequestHead, buf: &[u8], ex: &Exchange, out: &mut Vec<u8>) {
        for part in &self.parts {
            render_part(part, head, buf, ex, out);
        }
    }
}

/// Appends one part's value.
fn render_part(part: &Part, head: &RequestHead, buf: &[u8], ex: &Exchange, out: &mut Vec<u8>) {
    match part {
        Part::Text(t) => out.extend_from_slice(t),
        Part::ClientIp => {
            let _ = write!(out, "{}", ex.client_ip);
        }
        Part::RequestId => out.extend_from_slice(ex.request_id.as_bytes()),
        Part::Method => out.extend_from_slice(head.method_span.get(buf)),
        Part::Host => out.extend_from_slice(head.authority(buf).unwrap_or_default()),
        Part::Target => out.extend_from_slice(ex.target(head, buf)),
        Part::Path => out.extend_from_slice(proto::path::split_query(ex.target(head, buf)).0),
        Part::Query => out.extend_from_slice(proto::path::split_query(ex.target(head, buf)).1),
        Part::Consumer => out.extend_from_slice(ex.consumer().unwrap_or_default().as_bytes()),
        Part::Param(i) => out.extend_from_slice(ex.param(*i, head, buf).unwrap_or_default()),
        Part::Claim(c) => {
            if let Some(v) = ex.identity.as_deref().and_then(|id| id.claim(c)) {
                out.extend_from_slice(v.as_bytes());
            }
        }
    }
}

/// Where a rendered value lands in a request target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spot {
    /// In the path, before any `?`.
    Path,
    /// In the query.
    Query,
}

/// Appends `v` percent-encoded for `spot` (RFC 3986): unreserved characters stay, and in a
/// path the sub-delimiters, `:` and `@` too; everything else (`/ ? # %`, and in a query
/// `& = +`) is encoded, and a whole `.` or `..` has its dots encoded, so a value never
/// adds a segment, a parameter or a dot segment.
pub fn put_encoded(out: &mut Vec<u8>, v: &[u8], spot: Spot) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let dots = v == b"." || v == b"..";
    for &b in v {
        let unreserved = b.is_ascii_alphanumeric() || b"-._~".contains(&b);
        let keep = match spot {
            Spot::Path => (unreserved && !(dots && b == b'.')) || b"!$'()*,;:@&=+".contains(&b),
            Spot::Query => unreserved || b"!$'()*,;:@/?".contains(&b),
        };
        if keep {
            out.push(b);
        } else {
            out.push(b'%');
            out.push(HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'));
            out.push(HEX.get(usize::from(b & 15)).copied().unwrap_or(b'0'));
        }
    }
}

impl Template {
    /// Appends the rendered value as part of a request target, `spot` saying where the
    /// output stands (and updated past a `?`). Pieces of the request's own target (`path`,
    /// `target`, `query`, and captures in the path) go as they are; every other value, and a
    /// capture in the query, is percent-encoded for where it lands (`put_encoded`).
    pub fn render_target(
        &self,
        head: &RequestHead,
        buf: &[u8],
        ex: &Exchange,
        out: &mut Vec<u8>,
        spot: &mut Spot,
    ) {
        let mut value = Vec::new();
        for part in &self.parts {
            let raw = match part {
                Part::Text(t) => {
                    out.extend_from_slice(t);
                    if t.contains(&b'?') {
                        *spot = Spot::Query;
                    }
                    continue;
                }
                Part::Target | Part::Query => {
                    let t = if matches!(part, Part::Target) {
                        ex.target(head, buf)
                    } else {
                        proto::path::split_query(ex.target(head, buf)).1
                    };
                    out.extend_from_slice(t);
                    if matches!(part, Part::Query) || t.contains(&b'?') {
                        *spot = Spot::Query;
                    }
                    continue;
                }
                Part::Path => {
                    out.extend_from_slice(proto::path::split_query(ex.target(head, buf)).0);
                    continue;
                }
                Part::Param(i) if *spot == Spot::Path => {
                    out.extend_from_slice(ex.param(*i, head, buf).unwrap_or_default());
                    continue;
                }
                _ => part,
            };
            value.clear();
            render_part(raw, head, buf, ex, &mut value);
            put_encoded(out, &value, *spot);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::rc::Rc;
    use std::time::Instant;

    use super::*;
    use crate::exchange::Identity;
    use crate::router::{Lookup, Router};

    fn params() -> Vec<String> {
        vec!["id".to_string(), "rest".to_string()]
    }

    #[test]
    fn parses_literals_and_slots_and_refuses_unknown_names() {
        assert_eq!(
            Template::parse("plain", &[]).map(|t| t.literal().map(<[u8]>::to_vec)),
            Ok(Some(b"plain".to_vec()))
        );
        assert!(Template::parse("a ${client_ip} b", &[]).is_ok_and(|t| t.literal().is_none()));
        for (text, want) in [
            (
                "${nope}",
                "unknown placeholder `${nope}`, expected one of: ",
            ),
            ("x ${path", "`${` without a closing `}` in `x ${path`"),
            (
                "${param.user}",
                "`${param.user}`: the route has no capture `user` (it captures: id, rest)",
            ),
            ("${jwt.}", "unknown placeholder `${jwt.}`"),
        ] {
            let e = Template::parse(text, &params()).err().unwrap_or_default();
            assert!(e.starts_with(want), "{text}: {e}");
        }
        let e = Template::parse("${param.id}", &[])
            .err()
            .unwrap_or_default();
        assert!(e.ends_with("(the route captures none)"), "{e}");
    }

    #[test]
    fn values_are_encoded_for_where_they_land() {
        for (v, spot, want) in [
            ("a b", Spot::Path, "a%20b"),
            ("../x", Spot::Path, "..%2Fx"),
            ("..", Spot::Path, "%2E%2E"),
            (".", Spot::Path, "%2E"),
            ("a.b", Spot::Path, "a.b"),
            ("k=v&x", Spot::Path, "k=v&x"),
            ("k=v&x", Spot::Query, "k%3Dv%26x"),
            ("50%+", Spot::Query, "50%25%2B"),
            ("a/b?c#d", Spot::Query, "a/b?c%23d"),
            ("é", Spot::Path, "%C3%A9"),
        ] {
            let mut out = Vec::new();
            put_encoded(&mut out, v.as_bytes(), spot);
            assert_eq!(String::from_utf8_lossy(&out), want, "{v} {spot:?}");
        }
    }

    #[test]
    fn renders_each_slot_from_the_request_and_the_exchange() -> Result<(), String> {
        let conf = conf::load_str(
            "t.toml",
            "[[upstream]]\nname = \"u\"\ntargets = [\"127.0.0.1:1\"]\n[[route]]\npath = \"/users/{id}/{*rest}\"\nupstream = \"u\"\n",
        )
        .map_err(|e| e.to_string())?;
        let router = Router::build(&conf).map_err(|e| e.to_string())?;
        let buf = b"PUT /users/42/a/b?x=1 HTTP/1.1\r\nHost: api.test\r\n\r\n";
        let mut head = RequestHead::with_capacity(4);
        proto::parse_request(buf, &mut head, &proto::Limits::default())
            .map_err(|e| e.to_string())?;
        let Lookup::Found(id, found) = router.lookup(None, head.path_only(buf), b"PUT") else {
            return Err("no route".into());
        };
        let peer = SocketAddr::from(([10, 0, 0, 7], 999));
        let mut ex = Exchange::new(peer, Instant::now(), id, found);
        ex.request_id.set(b"req-1");
        ex.identity = Some(Rc::new(Identity {
            consumer: Rc::from("alice"),
            scopes: Rc::from(Vec::new()),
            roles: Rc::from(Vec::new()),
            claims: Rc::from(vec![(Box::from("tenant"), Box::from("acme"))]),
        }));
        let t = Template::parse(
            "${client_ip}|${request_id}|${method}|${host}|${path}|${query}|${consumer}|${param.id}|${param.rest}|${jwt.tenant}|${jwt.none}",
            &params(),
        )?;
        let mut out = Vec::new();
        t.render(&head, buf, &ex, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "10.0.0.7|req-1|PUT|api.test|/users/42/a/b|x=1|alice|42|a/b|acme|"
        );
        // a rewrite before changes what ${path} reads, never what the captures point into
        ex.set_target(b"/v2/42".to_vec());
        out.clear();
        Template::parse("${path}?${query}|${param.id}", &params())?
            .render(&head, buf, &ex, &mut out);
        assert_eq!(String::from_utf8_lossy(&out), "/v2/42?|42");
        Ok(())
    }
}
