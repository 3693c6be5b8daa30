//! `[route.aggregate]`: a route answered by several upstream calls made at once, composed
//! into one JSON object; its model and checks (names, upstreams, `depends_on`, fields).

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::values::{ByteSize, Duration};

/// `[route.aggregate]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateConf {
    /// When a call fails: `"partial"` (its member becomes `{"error": …}` and the answer
    /// names it in `partial_header`) or `"fail"` (the whole answer is 502).
    #[serde(default = "default_on_error")]
    pub on_error: Spanned<String>,
    /// Field naming the failed calls of a partial answer.
    #[serde(default = "default_partial_header")]
    pub partial_header: String,
    /// Largest body accepted from one call.
    #[serde(default = "default_max_body")]
    pub max_body: ByteSize,
    /// `[[route.aggregate.call]]`: the calls, each a member of the answer.
    pub call: Vec<Spanned<CallConf>>,
}

/// One `[[route.aggregate.call]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallConf {
    /// Its member's name in the answer.
    pub name: String,
    /// The `[[upstream]]` it goes to.
    pub upstream: Spanned<String>,
    /// The target sent (path and query), a template of the request and, with `depends_on`,
    /// of that call's answer (`${profile.account.id}`).
    pub path: String,
    /// Method sent.
    #[serde(default = "default_method")]
    pub method: String,
    /// Deadline for the whole call (connect, request, answer).
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// Request fields passed from the client's request (others are not sent).
    #[serde(default)]
    pub headers: Vec<String>,
    /// Another call (one without `depends_on`) whose answer this one needs.
    #[serde(default)]
    pub depends_on: Option<String>,
}

fn default_on_error() -> Spanned<String> {
    Spanned::new(0..0, "partial".to_string())
}

fn default_partial_header() -> String {
    "X-Aggregate-Partial".to_string()
}

fn default_max_body() -> ByteSize {
    ByteSize(1 << 20)
}

fn default_method() -> String {
    "GET".to_string()
}

fn default_timeout() -> Duration {
    Duration::millis(1000)
}

/// What to do when a call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Answer 502 for the whole request.
    Fail,
    /// Put `{"error": …}` in its member and name it in the partial header.
    Partial,
}

/// A checked aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    /// On a failed call.
    pub on_error: OnError,
    /// Field naming failed calls.
    pub partial_header: String,
    /// Largest body per call.
    pub max_body: u64,
    /// The calls, in config order.
    pub calls: Vec<Call>,
}

/// A checked call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Member name.
    pub name: String,
    /// Index into `Config::upstreams`.
    pub upstream: usize,
    /// Target template.
    pub path: String,
    /// Method token.
    pub method: String,
    /// Deadline.
    pub timeout: std::time::Duration,
    /// Client fields passed on.
    pub headers: Vec<String>,
    /// Index of the call it waits for.
    pub depends_on: Option<usize>,
    /// Where its table is written (for errors found later, in its path template).
    pub span: Range<usize>,
}

/// Fields a call may not pass on: the gateway writes them.
fn gateway_field(name: &str) -> bool {
    [
        "host",
        "connection",
        "content-length",
        "transfer-encoding",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
        "expect",
    ]
    .iter()
    .any(|f| name.eq_ignore_ascii_case(f))
}

/// Checks a route's aggregate `a`, if it has one, against the upstream groups `names`
/// (`forwards`: the route also names an upstream, a split or CONNECT): the checked
/// aggregate and every problem with its place.
pub fn for_route(
    rname: &str,
    a: Option<&Spanned<AggregateConf>>,
    forwards: bool,
    names: &[&str],
) -> (Option<Aggregate>, Vec<(Range<usize>, String)>) {
    let Some(a) = a else {
        return (None, Vec::new());
    };
    let mut bad = Vec::new();
    if forwards {
        bad.push((
            a.span(),
            format!("route `{rname}`: [route.aggregate] answers the route: it takes no `upstream`, `[[route.split]]` or `connect`"),
        ));
    }
    let mut unknown = Vec::new();
    let mut find = |u: &Spanned<String>| {
        let found = names.iter().position(|n| *n == u.get_ref().as_str());
        if found.is_none() {
            unknown.push((
                u.span(),
                format!("route `{rname}`: unknown upstream `{}`", u.get_ref()),
            ));
        }
        found
    };
    let whole = a.span();
    let checked = check(rname, a.get_ref(), &mut find, &mut |span, msg| {
        bad.push((if span.is_empty() { whole.clone() } else { span }, msg))
    });
    bad.extend(unknown);
    bad.sort_by_key(|(s, _)| s.start);
    (Some(checked), bad)
}

/// Checks `a` for route `rname`; `upstream` finds a group by name; errors go to `bad`.
pub fn check(
    rname: &str,
    a: &AggregateConf,
    upstream: &mut dyn FnMut(&Spanned<String>) -> Option<usize>,
    bad: &mut dyn FnMut(Range<usize>, String),
) -> Aggregate {
    let on_error = match a.on_error.get_ref().as_str() {
        "fail" => OnError::Fail,
        "partial" => OnError::Partial,
        other => {
            bad(
                a.on_error.span(),
                format!("route `{rname}`: on_error `{other}`: expected \"partial\" or \"fail\""),
            );
            OnError::Partial
        }
    };
    if !a
        .partial_header
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        || a.partial_header.is_empty()
        || gateway_field(&a.partial_header)
    {
        bad(
            0..0,
            format!(
                "route `{rname}`: partial_header `{}` is not a field name the gateway may set",
                a.partial_header
            ),
        );
    }
    if a.call.is_empty() {
        bad(
            0..0,
            format!(
                "route `{rname}`: [route.aggregate] needs at least one [[route.aggregate.call]]"
            ),
        );
    }
    let mut calls = Vec::with_capacity(a.call.len());
    for c in &a.call {
        let (span, c) = (c.span(), c.get_ref());
        let name = &c.name;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            bad(
                span.clone(),
                format!("route `{rname}`: call name `{name}` must be letters, digits or _"),
            );
        }
        if a.call.iter().filter(|o| o.get_ref().name == *name).count() > 1 {
            bad(
                span.clone(),
                format!("route `{rname}`: two calls are named `{name}`"),
            );
        }
        if !c.path.starts_with('/') {
            bad(
                span.clone(),
                format!(
                    "route `{rname}` call `{name}`: path `{}` must start with `/`",
                    c.path
                ),
            );
        }
        if c.method.is_empty() || !c.method.bytes().all(|b| b.is_ascii_uppercase()) {
            bad(
                span.clone(),
                format!(
                    "route `{rname}` call `{name}`: invalid method `{}`",
                    c.method
                ),
            );
        }
        if c.timeout.0.is_zero() {
            bad(
                span.clone(),
                format!("route `{rname}` call `{name}`: timeout must be above 0"),
            );
        }
        for h in c
            .headers
            .iter()
            .filter(|h| gateway_field(h) || h.is_empty())
        {
            bad(
                span.clone(),
                format!(
                    "route `{rname}` call `{name}`: `{h}` is written by the gateway, not passed on"
                ),
            );
        }
        let depends_on = c.depends_on.as_ref().and_then(|d| {
            let found = a.call.iter().position(|o| o.get_ref().name == *d);
            match found.and_then(|i| a.call.get(i).map(|o| (i, o.get_ref()))) {
                Some((_, o)) if o.name == *name => {
                    bad(span.clone(), format!("route `{rname}` call `{name}`: depends_on names itself"));
                    None
                }
                Some((_, o)) if o.depends_on.is_some() => {
                    bad(span.clone(), format!("route `{rname}` call `{name}`: depends_on `{d}`, which depends on another call (one level only)"));
                    None
                }
                Some((i, _)) => Some(i),
                None => {
                    bad(span.clone(), format!("route `{rname}` call `{name}`: depends_on `{d}`: no such call"));
                    None
                }
            }
        });
        calls.push(Call {
            name: name.clone(),
            upstream: upstream(&c.upstream).unwrap_or(0),
            path: c.path.clone(),
            method: c.method.clone(),
            timeout: c.timeout.0,
            headers: c.headers.clone(),
            depends_on,
            span,
        });
    }
    Aggregate {
        on_error,
        partial_header: a.partial_header.clone(),
        max_body: a.max_body.0,
        calls,
    }
}
