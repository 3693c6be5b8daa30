//! The rewrite stage's query edits: parameters removed, renamed, replaced and added (values
//! are templates, percent-encoded), the request's own kept in their order.

use std::collections::BTreeMap;

use proto::RequestHead;

use crate::exchange::Exchange;
use crate::template::Template;
use crate::template::{Spot, put_encoded};

/// A query parameter's name, as written in the target.
type Name = Box<[u8]>;

/// What the stage does to the query.
#[derive(Default)]
pub(super) struct QueryEdits {
    add: Vec<(Name, Template)>,
    set: Vec<(Name, Template)>,
    remove: Vec<Name>,
    rename: Vec<(Name, Name)>,
}

impl QueryEdits {
    /// Builds them from the stage's `query_*` fields.
    pub(super) fn build(
        add: BTreeMap<String, String>,
        set: BTreeMap<String, String>,
        remove: &[String],
        rename: &BTreeMap<String, String>,
        params: &[String],
    ) -> Result<QueryEdits, String> {
        let values = |m: BTreeMap<String, String>, what: &str| -> Result<Vec<_>, String> {
            m.into_iter()
                .map(|(k, v)| {
                    let t =
                        Template::parse(&v, params).map_err(|e| format!("{what} `{k}`: {e}"))?;
                    Ok((query_name(&k, what)?, t))
                })
                .collect()
        };
        Ok(QueryEdits {
            add: values(add, "query_add")?,
            set: values(set, "query_set")?,
            remove: remove
                .iter()
                .map(|n| query_name(n, "query_remove"))
                .collect::<Result<_, _>>()?,
            rename: rename
                .iter()
                .map(|(a, b)| {
                    Ok((
                        query_name(a, "query_rename")?,
                        query_name(b, "query_rename")?,
                    ))
                })
                .collect::<Result<_, String>>()?,
        })
    }

    /// True when it changes nothing.
    pub(super) fn is_empty(&self) -> bool {
        self.add.is_empty()
            && self.set.is_empty()
            && self.remove.is_empty()
            && self.rename.is_empty()
    }

    /// Appends the query parameters of `query` after this stage's edits, `&`-separated.
    pub(super) fn apply(
        &self,
        query: &[u8],
        head: &RequestHead,
        buf: &[u8],
        ex: &Exchange,
        out: &mut Vec<u8>,
    ) {
        let start = out.len();
        let sep = |out: &mut Vec<u8>| {
            if out.len() > start {
                out.push(b'&');
            }
        };
        for pair in query.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match memchr::memchr(b'=', pair) {
                Some(i) => (
                    pair.get(..i).unwrap_or_default(),
                    pair.get(i..).unwrap_or_default(),
                ),
                None => (pair, &b""[..]),
            };
            if self.remove.iter().any(|r| **r == *name)
                || self.set.iter().any(|(n, _)| **n == *name)
            {
                continue;
            }
            sep(out);
            match self.rename.iter().find(|(from, _)| **from == *name) {
                Some((_, to)) => out.extend_from_slice(to),
                None => out.extend_from_slice(name),
            }
            out.extend_from_slice(value);
        }
        let mut value = Vec::new();
        for (name, t) in self.set.iter().chain(&self.add) {
            sep(out);
            out.extend_from_slice(name);
            out.push(b'=');
            value.clear();
            t.render(head, buf, ex, &mut value);
            put_encoded(out, &value, Spot::Query);
        }
    }
}

fn query_name(n: &str, what: &str) -> Result<Box<[u8]>, String> {
    if n.is_empty()
        || !n
            .bytes()
            .all(|b| proto::chars::is_uri(b) && !matches!(b, b'&' | b'=' | b'#' | b'?'))
    {
        return Err(format!("{what} `{n}` is not a query parameter name"));
    }
    Ok(n.as_bytes().into())
}
