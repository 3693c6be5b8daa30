//! The rewrite stage's path rule: strip or replace a prefix (whole segments), a regex with
//! captures, or a template; and the percent-encoding that keeps a rendered path a target.

use proto::RequestHead;
use regex::bytes::Regex;

use super::{Config, Prefix};
use crate::exchange::Exchange;
use crate::template::Template;

/// How the path is rewritten.
pub(super) enum PathRule {
    Strip(Box<[u8]>),
    Replace(Box<[u8]>, Box<[u8]>),
    Regex(Regex, Box<[u8]>),
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
                rules.push(PathRule::Regex(re, to.into_bytes().into()));
            }
            (None, None) => {}
            _ => return Err("`regex` and `replacement` go together".to_string()),
        }
        if let Some(p) = c.path.take() {
            if !p.starts_with('/') {
                return Err(format!("path `{p}` must start with `/`"));
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
                out.extend_from_slice(to);
                out.extend_from_slice(rest);
            }
            PathRule::Regex(re, to) => {
                let caps = re.captures(path)?;
                let whole = caps.get(0)?;
                out.extend_from_slice(path.get(..whole.start())?);
                caps.expand(to, &mut out);
                out.extend_from_slice(path.get(whole.end()..)?);
                // a capture may hold what the path had encoded: keep it a valid target
                if !out.iter().all(|&b| proto::chars::is_uri(b) && b != b'#') {
                    let raw = std::mem::take(&mut out);
                    put_encoded(&mut out, &raw, b"");
                }
            }
            PathRule::Template(t) => {
                let mut raw = Vec::new();
                t.render(head, buf, ex, &mut raw);
                put_encoded(&mut out, &raw, b"");
                if raw.contains(&b'/') {
                    // slashes of the template (and of a catch-all capture) stay slashes
                    out.clear();
                    for (i, seg) in raw.split(|&b| b == b'/').enumerate() {
                        if i > 0 {
                            out.push(b'/');
                        }
                        put_encoded(&mut out, seg, b"");
                    }
                }
            }
        }
        Some(out)
    }
}

fn prefix_ok(p: &str, what: &str) -> Result<(), String> {
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

/// Appends `value` percent-encoding what may not stand in a path or query (`extra` are more
/// bytes to encode, `&` and `=` in a query value).
pub(super) fn put_encoded(out: &mut Vec<u8>, value: &[u8], extra: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value {
        if proto::chars::is_uri(b) && b != b'#' && b != b'?' && !extra.contains(&b) {
            out.push(b);
        } else {
            out.push(b'%');
            out.push(HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'));
            out.push(HEX.get(usize::from(b & 15)).copied().unwrap_or(b'0'));
        }
    }
}
