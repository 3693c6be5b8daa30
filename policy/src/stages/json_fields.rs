//! Trims JSON response bodies per route: keeps an allowlist of fields (or the ones the
//! client names in a query parameter, within that allowlist), removes fields and replaces
//! values, by dotted paths (`owner.email`) that step into every element of an array. The
//! body is held until it ends (up to `max_size`; a larger one passes unchanged), then
//! parsed, edited and written out; one that does not parse passes unchanged. Applies to
//! 2xx `application/json` (and `+json`) bodies that are not content-encoded; the result has
//! the gateway's framing and a weakened `ETag`.
//!
//! ```toml
//! [[route.policy]]
//! kind = "json_fields"
//! allow = ["id", "name", "owner.login"]
//! param = "fields"
//! remove = ["owner.email"]
//! replace = { "owner.avatar" = "" }
//! ```

use std::cell::Cell;
use std::collections::BTreeMap;

use proto::{RequestHead, ResponseHead};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::cache::entry::values;
use crate::cache::table::bump;
use crate::exchange::Exchange;
use crate::slots::{Slots, counted};
use crate::stage::{BodyTap, Figure, Piece, Stage, StageBuild, StageContext, Verdict};

/// `[[route.policy]] kind = "json_fields"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Dotted paths kept (everything else removed); empty keeps all. Default empty.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Query parameter in which the client lists the fields it wants (comma-separated),
    /// honoured only within `allow`. Default none.
    #[serde(default)]
    pub param: Option<String>,
    /// Dotted paths removed. Default none.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Dotted paths whose values are replaced, `{ "a.b" = <any TOML value> }`. Default none.
    #[serde(default)]
    pub replace: BTreeMap<String, toml::Value>,
    /// Largest body edited; a larger one passes unchanged. Default `1MiB`.
    #[serde(default = "default_max_size")]
    pub max_size: conf::values::ByteSize,
}

fn default_max_size() -> conf::values::ByteSize {
    conf::values::ByteSize(1 << 20)
}

/// A dotted path, split.
type Path = Vec<Box<str>>;

fn path(p: &str, what: &str) -> Result<Path, String> {
    if p.is_empty() || p.split('.').any(str::is_empty) {
        return Err(format!("{what} `{p}` is not a dotted path (`a`, `a.b`)"));
    }
    Ok(p.split('.').map(Box::from).collect())
}

/// The stage.
pub struct JsonFields {
    allow: Vec<Path>,
    param: Option<Box<[u8]>>,
    remove: Vec<Path>,
    replace: Vec<(Path, Value)>,
    max_size: usize,
    /// The client's choice (indices into `allow`) per exchange, from its query.
    chosen: Slots<Vec<usize>>,
    /// Bodies being held, per exchange; `None` once one passed `max_size`.
    held: Slots<Option<Vec<u8>>>,
    edited: Cell<u64>,
    passed: Cell<u64>,
}

impl StageBuild for JsonFields {
    const KIND: &'static str = "json_fields";
    type Config = Config;

    fn build(c: Config, _ctx: &StageContext<'_>) -> Result<JsonFields, String> {
        let allow = c
            .allow
            .iter()
            .map(|p| path(p, "allow"))
            .collect::<Result<Vec<_>, _>>()?;
        if c.param.is_some() && allow.is_empty() {
            return Err("`param` needs `allow`: the fields a client may ask for".to_string());
        }
        if let Some(p) = &c.param
            && (p.is_empty()
                || !p
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
        {
            return Err(format!("param `{p}` is not a query parameter name"));
        }
        let mut replace = Vec::with_capacity(c.replace.len());
        for (p, v) in c.replace {
            let v = serde_json::to_value(v).map_err(|e| format!("replace `{p}`: {e}"))?;
            replace.push((path(&p, "replace")?, v));
        }
        Ok(JsonFields {
            allow,
            param: c.param.map(|p| p.into_bytes().into()),
            remove: c
                .remove
                .iter()
                .map(|p| path(p, "remove"))
                .collect::<Result<_, _>>()?,
            replace,
            max_size: usize::try_from(c.max_size.0).unwrap_or(usize::MAX),
            chosen: Slots::default(),
            held: Slots::default(),
            edited: Cell::new(0),
            passed: Cell::new(0),
        })
    }
}

/// Keeps, in `v`, only what one of `keep` names (each path relative to `v`).
fn keep_only(v: &mut Value, keep: &[&[Box<str>]]) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(|i| keep_only(i, keep)),
        Value::Object(map) => {
            let old = std::mem::take(map);
            for (k, mut child) in old {
                let deeper: Vec<&[Box<str>]> = keep
                    .iter()
                    .filter_map(|p| p.split_first())
                    .filter(|(head, _)| ***head == *k)
                    .map(|(_, rest)| rest)
                    .collect();
                if deeper.is_empty() {
                    continue;
                }
                // a path that ends here keeps the whole value
                if !deeper.iter().any(|r| r.is_empty()) {
                    keep_only(&mut child, &deeper);
                }
                map.insert(k, child);
            }
        }
        _ => {}
    }
}

/// Calls `f` on the object holding the last segment of `path`, in every array element.
fn at_parent(v: &mut Value, path: &[Box<str>], f: &mut dyn FnMut(&mut Map<String, Value>, &str)) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(|i| at_parent(i, path, f)),
        Value::Object(map) => match path {
            [last] => f(map, last),
            [first, rest @ ..] => {
                if let Some(child) = map.get_mut(&**first) {
                    at_parent(child, rest, f);
                }
            }
            [] => {}
        },
        _ => {}
    }
}

impl JsonFields {
    /// Edits a parsed body; `chosen` are the allowlist entries the client asked for.
    fn edit(&self, v: &mut Value, chosen: Option<&[usize]>) {
        if !self.allow.is_empty() {
            let keep: Vec<&[Box<str>]> = match chosen {
                Some(c) => c
                    .iter()
                    .filter_map(|&i| self.allow.get(i))
                    .map(Vec::as_slice)
                    .collect(),
                None => self.allow.iter().map(Vec::as_slice).collect(),
            };
            keep_only(v, &keep);
        }
        for p in &self.remove {
            at_parent(v, p, &mut |m, k| {
                m.shift_remove(k);
            });
        }
        for (p, new) in &self.replace {
            at_parent(v, p, &mut |m, k| {
                if let Some(slot) = m.get_mut(k) {
                    *slot = new.clone();
                }
            });
        }
    }

    /// The allowlist entries a request's `param` names (`None`: it names none, all allowed).
    fn choice(&self, head: &RequestHead, buf: &[u8], ex: &Exchange) -> Option<Vec<usize>> {
        let name = self.param.as_deref()?;
        let (_, query) = proto::path::split_query(ex.target(head, buf));
        let mut chosen = Vec::new();
        for pair in query.split(|&b| b == b'&') {
            let Some(list) = pair.strip_prefix(name).and_then(|r| r.strip_prefix(b"=")) else {
                continue;
            };
            let list = String::from_utf8_lossy(list)
                .replace("%2C", ",")
                .replace("%2c", ",");
            for want in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
                let found = self.allow.iter().position(|p| {
                    p.len() == want.split('.').count()
                        && p.iter().zip(want.split('.')).all(|(a, b)| **a == *b)
                });
                if let Some(i) = found.filter(|i| !chosen.contains(i)) {
                    chosen.push(i);
                }
            }
        }
        // a list of nothing allowed keeps nothing; no list at all keeps the allowlist
        query
            .split(|&b| b == b'&')
            .any(|p| p.strip_prefix(name).is_some_and(|r| r.starts_with(b"=")))
            .then_some(chosen)
    }

    /// Writes the edited body (or the body as it came, when it does not parse).
    fn finish(&self, body: &[u8], chosen: Option<&[usize]>, out: &mut Vec<u8>) {
        if let Ok(mut v) = serde_json::from_slice::<Value>(body) {
            self.edit(&mut v, chosen);
            let start = out.len();
            if serde_json::to_writer(&mut *out, &v).is_ok() {
                bump(&self.edited, 1);
                return;
            }
            out.truncate(start);
        }
        out.extend_from_slice(body);
        bump(&self.passed, 1);
    }

    fn eligible(head: &ResponseHead, buf: &[u8]) -> bool {
        let json = values(&head.fields, buf, b"content-type")
            .next()
            .is_some_and(|ct| {
                let media = ct
                    .split(|&c| c == b';')
                    .next()
                    .unwrap_or_default()
                    .trim_ascii();
                media.eq_ignore_ascii_case(b"application/json")
                    || media.len() > 5
                        && media
                            .get(media.len() - 5..)
                            .is_some_and(|s| s.eq_ignore_ascii_case(b"+json"))
            });
        let encoded = values(&head.fields, buf, b"content-encoding")
            .any(|v| !v.trim_ascii().eq_ignore_ascii_case(b"identity"));
        json && !encoded && (200..300).contains(&head.status) && !matches!(head.status, 204 | 206)
    }
}

impl Stage for JsonFields {
    fn on_request(&self, head: &RequestHead, buf: &[u8], ex: &mut Exchange) -> Verdict<'_> {
        if let Some(c) = self.choice(head, buf, ex) {
            self.chosen.put(ex.serial, c);
        }
        Verdict::Continue
    }

    fn on_response(&self, head: &ResponseHead, buf: &[u8], ex: &mut Exchange) {
        if ex.method == proto::Method::Head
            || !Self::eligible(head, buf)
            || head
                .content_length
                .is_some_and(|n| n > self.max_size as u64)
        {
            return;
        }
        let edits = &mut ex.response;
        edits.weaken_etags(&head.fields, buf);
        edits.drop_named(&head.fields, buf, b"accept-ranges");
        // grown as the body comes: a Content-Length is a claim, not bytes
        let cap = head
            .content_length
            .map_or(8192, |n| n.min(64 * 1024) as usize);
        self.held.put(ex.serial, Some(Vec::with_capacity(cap)));
    }

    fn response_body(&self, _head: &ResponseHead, _buf: &[u8], ex: &Exchange) -> Option<BodyTap> {
        self.held.has(ex.serial).then_some(BodyTap::Rewrite)
    }

    fn on_response_body(&self, piece: Piece<'_>, ex: &mut Exchange, out: &mut Vec<u8>) {
        match piece {
            Piece::Data(d) => {
                let passed = self.held.with(ex.serial, |slot| match slot {
                    Some(body) if body.len() + d.len() <= self.max_size => {
                        body.extend_from_slice(d);
                        false
                    }
                    Some(body) => {
                        // too large to edit: what was held goes out, then the rest as it comes
                        out.append(body);
                        out.extend_from_slice(d);
                        *slot = None;
                        true
                    }
                    None => {
                        out.extend_from_slice(d);
                        false
                    }
                });
                if passed == Some(true) {
                    bump(&self.passed, 1);
                }
            }
            Piece::End => {
                let Some(Some(body)) = self.held.take(ex.serial) else {
                    return;
                };
                let chosen = self.chosen.take(ex.serial);
                self.finish(&body, chosen.as_deref(), out);
            }
            Piece::TooLarge => {}
        }
    }

    fn on_finish(&self, ex: &Exchange) {
        self.chosen.forget(ex.serial);
        self.held.forget(ex.serial);
    }

    fn figures(&self) -> Vec<Figure> {
        counted(&[("edited", &self.edited), ("passed", &self.passed)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(text: &str) -> Result<JsonFields, String> {
        let cfg: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        JsonFields::build(cfg, &StageContext::alone(1, std::path::Path::new(".")))
    }

    fn edited(stage: &JsonFields, body: &str, chosen: Option<&[usize]>) -> String {
        let mut v: Value = serde_json::from_str(body).unwrap_or_default();
        stage.edit(&mut v, chosen);
        v.to_string()
    }

    #[test]
    fn keeps_removes_and_replaces_by_dotted_paths_through_arrays() -> Result<(), String> {
        let s = build(
            "allow = [\"id\", \"owner.login\", \"owner.email\", \"tags\"]\nremove = [\"owner.email\"]\nreplace = { \"owner.login\" = \"***\", \"missing\" = 1 }",
        )?;
        let body = r#"[{"id":1,"secret":"s","owner":{"login":"al","email":"a@x","age":3},"tags":["a"]},{"id":2,"owner":"none"}]"#;
        assert_eq!(
            edited(&s, body, None),
            r#"[{"id":1,"owner":{"login":"***"},"tags":["a"]},{"id":2,"owner":"none"}]"#
        );
        // the client's choice within the allowlist
        assert_eq!(edited(&s, body, Some(&[0])), r#"[{"id":1},{"id":2}]"#);
        assert_eq!(edited(&s, r#"{"b":1,"a":2,"id":3}"#, None), r#"{"id":3}"#);
        Ok(())
    }

    #[test]
    fn refuses_bad_paths_and_a_param_without_an_allowlist() {
        for (text, want) in [
            (
                "allow = [\"a..b\"]",
                "allow `a..b` is not a dotted path (`a`, `a.b`)",
            ),
            (
                "param = \"fields\"",
                "`param` needs `allow`: the fields a client may ask for",
            ),
            (
                "allow = [\"a\"]\nparam = \"f&x\"",
                "param `f&x` is not a query parameter name",
            ),
        ] {
            assert_eq!(build(text).err().as_deref(), Some(want), "{text}");
        }
    }
}
