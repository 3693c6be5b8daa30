//! A route's aggregate compiled for a shard (the aggregate module runs it): each call's
//! upstream, target template (request placeholders, and fields of the call it depends on),
//! method, deadline and the client fields it passes on.

use std::time::Duration;

use policy::template::{Spot, Template, put_encoded};
use proto::RequestHead;
use serde_json::Value;

use conf::aggregate::{Aggregate, OnError};
use policy::Exchange;

/// One piece of a call's target.
enum Piece {
    /// Request placeholders and text (`policy::template`).
    Request(Template),
    /// A field of the answer of the call it depends on, by dotted path.
    Field(Vec<String>),
}

/// One call, ready to make.
pub struct CallPlan {
    /// Its member name, written as a JSON string (quotes included).
    pub key: Vec<u8>,
    /// Its name, for the partial header and messages.
    pub name: String,
    /// Index into `Gateway::upstreams`.
    pub upstream: usize,
    /// Method token.
    pub method: String,
    /// Deadline for the whole call.
    pub timeout: Duration,
    /// Client fields passed on (lower-case names).
    pub headers: Vec<Vec<u8>>,
    /// The call it waits for.
    pub depends_on: Option<usize>,
    target: Vec<Piece>,
}

/// The aggregate of one route.
pub struct Plan {
    /// On a failed call.
    pub on_error: OnError,
    /// Field naming the failed calls of a partial answer.
    pub partial_header: String,
    /// Largest body per call.
    pub max_body: usize,
    /// The calls, in config order (the answer's member order).
    pub calls: Vec<CallPlan>,
}

impl Plan {
    /// Compiles `a` for a route whose captures are `params`; an error names the call.
    pub fn build(
        a: &Aggregate,
        params: &[String],
    ) -> Result<Plan, (std::ops::Range<usize>, String)> {
        let mut calls = Vec::with_capacity(a.calls.len());
        for c in &a.calls {
            let dep = c
                .depends_on
                .and_then(|i| a.calls.get(i))
                .map(|d| d.name.as_str());
            let target = parse_target(&c.path, params, dep)
                .map_err(|e| (c.span.clone(), format!("call `{}`: path: {e}", c.name)))?;
            calls.push(CallPlan {
                key: serde_json::to_vec(&c.name).unwrap_or_default(),
                name: c.name.clone(),
                upstream: c.upstream,
                method: c.method.clone(),
                timeout: c.timeout,
                headers: c
                    .headers
                    .iter()
                    .map(|h| h.to_ascii_lowercase().into_bytes())
                    .collect(),
                depends_on: c.depends_on,
                target,
            });
        }
        Ok(Plan {
            on_error: a.on_error,
            partial_header: a.partial_header.clone(),
            max_body: usize::try_from(a.max_body).unwrap_or(usize::MAX),
            calls,
        })
    }
}

/// Splits `path` into request templates and `${<dep>.<field>}` pieces.
fn parse_target(path: &str, params: &[String], dep: Option<&str>) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = path;
    while let Some(at) = rest.find("${") {
        let (lit, tail) = rest.split_at(at);
        text.push_str(lit);
        let end = tail
            .find('}')
            .ok_or_else(|| format!("`${{` without a closing `}}` in `{path}`"))?;
        let name = tail.get(2..end).unwrap_or_default();
        let field = dep
            .and_then(|d| name.strip_prefix(d))
            .and_then(|r| r.strip_prefix('.'));
        match field {
            Some(f) if !f.is_empty() && !f.split('.').any(str::is_empty) => {
                if !text.is_empty() {
                    pieces.push(Piece::Request(Template::parse(
                        &std::mem::take(&mut text),
                        params,
                    )?));
                }
                pieces.push(Piece::Field(f.split('.').map(str::to_string).collect()));
            }
            _ => text.push_str(tail.get(..=end).unwrap_or_default()),
        }
        rest = tail.get(end + 1..).unwrap_or_default();
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Request(Template::parse(&text, params)?));
    }
    Ok(pieces)
}

impl CallPlan {
    /// The target for this request; `dep` is the parsed answer of the call it depends on.
    /// `Err` names a field that the answer lacks (or that is not a string or a number).
    pub fn target(
        &self,
        head: &RequestHead,
        buf: &[u8],
        ex: &Exchange,
        dep: Option<&Value>,
    ) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(64);
        let mut spot = Spot::Path;
        for p in &self.target {
            match p {
                Piece::Request(t) => t.render_target(head, buf, ex, &mut out, &mut spot),
                Piece::Field(path) => {
                    let v = path
                        .iter()
                        .try_fold(dep.unwrap_or(&Value::Null), |v, k| v.get(k));
                    let text = match v {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Number(n)) => n.to_string(),
                        Some(Value::Bool(b)) => b.to_string(),
                        _ => {
                            return Err(format!("field `{}` is not in its answer", path.join(".")));
                        }
                    };
                    // one segment or one value, whatever the answer holds
                    put_encoded(&mut out, text.as_bytes(), spot);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_take_request_placeholders_and_the_dependency_s_fields() -> Result<(), String> {
        let pieces = parse_target(
            "/acct/${user.account.id}?q=${query}&n=${user.name}",
            &[],
            Some("user"),
        )?;
        let plan = CallPlan {
            key: Vec::new(),
            name: "a".into(),
            upstream: 0,
            method: "GET".into(),
            timeout: Duration::from_secs(1),
            headers: Vec::new(),
            depends_on: Some(0),
            target: pieces,
        };
        let buf = b"GET /d?x=1 HTTP/1.1\r\nHost: h\r\n\r\n";
        let mut head = RequestHead::with_capacity(4);
        proto::parse_request(buf, &mut head, &proto::Limits::default())
            .map_err(|e| e.to_string())?;
        let ex = Exchange::default();
        let dep: Value = serde_json::json!({"account": {"id": 42}, "name": "a b/c&d=%"});
        let t = plan.target(&head, buf, &ex, Some(&dep))?;
        // the request's own query goes as it is; the answer's value is one value
        assert_eq!(
            String::from_utf8_lossy(&t),
            "/acct/42?q=x=1&n=a%20b/c%26d%3D%25"
        );
        // in a path, an answer's value is one segment: no `/`, no dot segment
        for (id, want) in [
            ("../admin", "/acct/..%2Fadmin"),
            ("..", "/acct/%2E%2E"),
            ("a/b?c", "/acct/a%2Fb%3Fc"),
        ] {
            let d: Value = serde_json::json!({"account": {"id": id}, "name": ""});
            let t = plan.target(&head, buf, &ex, Some(&d))?;
            assert!(
                String::from_utf8_lossy(&t).starts_with(&format!("{want}?")),
                "{id}: {}",
                String::from_utf8_lossy(&t)
            );
        }
        let e = plan
            .target(&head, buf, &ex, Some(&serde_json::json!({"name": 1})))
            .err();
        assert_eq!(
            e.as_deref(),
            Some("field `account.id` is not in its answer")
        );
        // a placeholder of another call's name is a request placeholder, refused as unknown
        assert!(parse_target("/${other.id}", &[], Some("user")).is_err());
        Ok(())
    }
}
