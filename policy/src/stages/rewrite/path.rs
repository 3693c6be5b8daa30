//! The rewrite stage's path rule: strip or replace a prefix (whole segments), a regex with
//! captures, or a template; and the percent-encoding that keeps a rendered path a target.

use proto::RequestHead;
use regex::bytes::Regex;

use super::{Config, Prefix};
use crate::exchange::Exchange;
use crate::template::{Spot, Template, put_encoded};

/// How the path is rewritten.
pub(super) enum PathRule {
    Strip(Box<[u8]>),
    Replace(Box<[u8]>, Box<[u8]>),
    Regex(Regex, Vec<Rep>),
    Template(Template),
}

impl PathRule {
    /// The one rule `c` names (taking its fields), if any.
    pub(super) fn build(c: &mut Config, params: &[String]) -> Result<Option<PathRule>, String> {
        let mut rules = Vec::new();
        if let Some(p) = c.strip_prefix.take() {
            prefix_ok(&p, "strip_prefix")?;
            rules.push(PathRule::Strip(p.into_bytes().into()));
        }
        if let Some(Prefix { from, to }) = c.replace_prefix.take() {
            prefix_ok(&from, "replace_prefix.from")?;
            prefix_ok(&to, "replace_prefix.to")?;
            rules.push(PathRule::Replace(
                from.into_bytes().into(),
                to.into_bytes().into(),
            ));
        }
        match (c.regex.take(), c.replacement.take()) {
            (Some(r), Some(to)) => {
                let re = Regex::new(&r).map_err(|e| format!("regex: {e}"))?;
                if !to.starts_with('/')
                    || !to
                        .bytes()
                        .all(|b| proto::chars::is_uri(b) || b"{}".contains(&b))
                {
                    return Err(format!(
                        "replacement `{to}` must start with `/` and hold URI characters only"
                    ));
                }
                rules.push(PathRule::Regex(re, replacement(&to)));
            }
            (None, None) => {}
            _ => return Err("`regex` and `replacement` go together".to_string()),
        }
        if let Some(p) = c.path.take() {
            if !p.starts_with('/') || p.contains('?') {
                return Err(format!(
                    "path `{p}` must start with `/` and hold no query (query_add, query_set add parameters)"
                ));
            }
            rules.push(PathRule::Template(
                Template::parse(&p, params).map_err(|e| format!("path: {e}"))?,
            ));
        }
        if rules.len() > 1 {
            return Err("at most one of strip_prefix, replace_prefix, regex and path".to_string());
        }
        Ok(rules.pop())
    }

    /// The new path (and any query the rule adds), or `None` when the rule leaves it.
    pub(super) fn apply(
        &self,
        path: &[u8],
        head: &RequestHead,
        buf: &[u8],
        ex: &Exchange,
    ) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(path.len() + 16);
        match self {
            PathRule::Strip(p) => {
                let rest = after_prefix(path, p)?;
                out.extend_from_slice(if rest.is_empty() { b"/" } else { rest });
            }
            PathRule::Replace(from, to) => {
                let rest = after_prefix(path, from)?;
                // `to = "/"`: `/v1/a` becomes `/a`, not `//a`
                if **to != *b"/" || rest.is_empty() {
                    out.extend_from_slice(to);
                }
                out.extend_from_slice(rest);
            }
            PathRule::Regex(re, to) => {
                let caps = re.captures(path)?;
                let whole = caps.get(0)?;
                out.extend_from_slice(path.get(..whole.start())?);
                let mut spot = Spot::Path;
                for r in to {
                    let got = match r {
                        Rep::Text(t) => {
                            out.extend_from_slice(t);
                            if t.contains(&b'?') {
                                spot = Spot::Query;
                            }
                            continue;
                        }
                        Rep::Index(i) => caps.get(*i),
                        Rep::Name(n) => caps.name(n),
                    };
                    let got = got.map_or(&b""[..], |m| m.as_bytes());
                    match spot {
                        // a piece of the path stays a piece of the path
                        Spot::Path => out.extend_from_slice(got),
                        // in a query it is one value: `&` or `=` in it add no parameter
                        Spot::Query => put_encoded(&mut out, got, Spot::Query),
                    }
                }
                out.extend_from_slice(path.get(whole.end()..)?);
            }
            PathRule::Template(t) => {
                t.render_target(head, buf, ex, &mut out, &mut Spot::Path);
            }
        }
        Some(out)
    }
}

/// A prefix matched (`to`: one written) must be a path without a final `/`; only what is
/// written may be `/` alone (every path starts with it: stripping it leaves no target).
fn prefix_ok(p: &str, what: &str) -> Result<(), String> {
    if what != "replace_prefix.to" && p == "/" {
        return Err(format!("{what} `/` matches every path: leave the rule out"));
    }
    if !p.starts_with('/')
        || p.len() > 1 && p.ends_with('/')
        || !p.bytes().all(proto::chars::is_uri)
        || p.contains('?')
    {
        return Err(format!(
            "{what} `{p}` must start with `/`, not end with one, and hold path characters only"
        ));
    }
    Ok(())
}

/// Whether `path` starts with the segments of `prefix`; what follows it.
fn after_prefix<'p>(path: &'p [u8], prefix: &[u8]) -> Option<&'p [u8]> {
    let rest = path.strip_prefix(prefix)?;
    (prefix == b"/" || rest.is_empty() || rest.starts_with(b"/")).then_some(rest)
}

/// A piece of a regex replacement.
pub(super) enum Rep {
    /// Written as it is.
    Text(Box<[u8]>),
    /// `$1`, `${1}`: a capture by number.
    Index(usize),
    /// `$name`, `${name}`: a capture by name.
    Name(Box<str>),
}

/// Parses a replacement the way the regex crate reads one (`$$` is a `$`).
fn replacement(to: &str) -> Vec<Rep> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = to;
    while let Some(at) = rest.find('$') {
        text.push_str(rest.get(..at).unwrap_or_default());
        let tail = rest.get(at + 1..).unwrap_or_default();
        if let Some(t) = tail.strip_prefix('$') {
            text.push('$');
            rest = t;
            continue;
        }
        let (name, after) = match tail.strip_prefix('{').and_then(|t| t.split_once('}')) {
            Some((n, a)) => (n, a),
            None => {
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                (
                    tail.get(..end).unwrap_or_default(),
                    tail.get(end..).unwrap_or_default(),
                )
            }
        };
        if name.is_empty() {
            text.push('$');
            rest = tail;
            continue;
        }
        if !text.is_empty() {
            out.push(Rep::Text(std::mem::take(&mut text).into_bytes().into()));
        }
        out.push(match name.parse::<usize>() {
            Ok(i) => Rep::Index(i),
            Err(_) => Rep::Name(name.into()),
        });
        rest = after;
    }
    text.push_str(rest);
    if !text.is_empty() {
        out.push(Rep::Text(text.into_bytes().into()));
    }
    out
}
