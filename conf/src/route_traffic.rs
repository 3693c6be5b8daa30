//! A route's traffic settings: its timeouts (`[route.timeouts]`), a weighted split across
//! upstream groups (`[[route.split]]`, optionally sticky), header- or cookie-matched groups
//! (`[[route.when]]`) and a shadow copy of requests (`[route.mirror]`); and their checks.

use serde::Deserialize;
use toml::Spanned;

use crate::traffic::HashOn;
use crate::values::Duration;

/// `[route.timeouts]`: each one overrides the upstream's for this route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTimeouts {
    /// Time allowed to connect (the upstream's `connect_timeout`).
    #[serde(default)]
    pub connect: Option<Duration>,
    /// Time from the request sent to the response head (the upstream's `response_timeout`).
    #[serde(default)]
    pub first_byte: Option<Duration>,
    /// Longest pause between body bytes, either way (the upstream's `response_timeout`).
    #[serde(default)]
    pub idle: Option<Duration>,
    /// Deadline for the whole exchange upstream, retries included (none by default).
    #[serde(default)]
    pub total: Option<Duration>,
}

/// One `[[route.split]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConf {
    /// The `[[upstream]]` this share goes to.
    pub upstream: Spanned<String>,
    /// Its share relative to the other entries (0 to 10000; 0 drains it).
    pub weight: Spanned<u32>,
}

/// One `[[route.when]]` entry: requests carrying a header or cookie go to a group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhenConf {
    /// A request header to look at.
    #[serde(default)]
    pub header: Option<String>,
    /// A cookie to look at.
    #[serde(default)]
    pub cookie: Option<String>,
    /// The value it must have (absent: any value, present is enough).
    #[serde(default)]
    pub value: Option<String>,
    /// The `[[upstream]]` such requests go to.
    pub upstream: Spanned<String>,
}

/// `[route.mirror]`: a share of requests copied to a shadow group, its answers discarded.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorConf {
    /// The `[[upstream]]` copies go to.
    pub upstream: Spanned<String>,
    /// Share of requests copied, in percent.
    #[serde(default = "hundred")]
    pub percent: u8,
}

fn hundred() -> u8 {
    100
}

/// A validated `[[route.when]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct When {
    /// A header (`true`) or a cookie (`false`).
    pub header: bool,
    /// Its name.
    pub name: String,
    /// The value it must have, if any.
    pub value: Option<String>,
    /// Index into `Config::upstreams`.
    pub upstream: usize,
}

/// A route's validated traffic settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteTraffic {
    /// Timeouts as written.
    pub timeouts: RouteTimeouts,
    /// Weighted groups (indices into `Config::upstreams`), when split.
    pub split: Vec<(usize, u32)>,
    /// What keeps a client on one side of the split (`None`: each request drawn).
    pub split_on: Option<HashOn>,
    /// Matched groups, first match wins.
    pub when: Vec<When>,
    /// The shadow group and the share copied.
    pub mirror: Option<(usize, u8)>,
}

/// The route's traffic tables as written, for `check`.
pub struct Written<'a> {
    /// `[route.timeouts]`.
    pub timeouts: &'a Option<Spanned<RouteTimeouts>>,
    /// `[[route.split]]`.
    pub split: &'a [SplitConf],
    /// `split_on`.
    pub split_on: &'a Option<Spanned<HashOn>>,
    /// `[[route.when]]`.
    pub when: &'a [Spanned<WhenConf>],
    /// `[route.mirror]`.
    pub mirror: &'a Option<Spanned<MirrorConf>>,
    /// `upstream` is also set.
    pub has_upstream: Option<std::ops::Range<usize>>,
}

/// Checks a route's traffic tables; `find` resolves an upstream name or reports it.
pub(crate) fn check(
    rname: &str,
    w: &Written<'_>,
    find: &mut dyn FnMut(&Spanned<String>) -> Option<usize>,
    bad: &mut dyn FnMut(std::ops::Range<usize>, String),
) -> RouteTraffic {
    let mut t = RouteTraffic {
        timeouts: w
            .timeouts
            .as_ref()
            .map(|s| *s.get_ref())
            .unwrap_or_default(),
        ..RouteTraffic::default()
    };
    if let Some(to) = w.timeouts {
        let v = to.get_ref();
        let all = [v.connect, v.first_byte, v.idle, v.total];
        if all.iter().flatten().any(|d| d.0.is_zero()) {
            bad(
                to.span(),
                format!("route `{rname}`: [route.timeouts] must be more than 0"),
            );
        }
    }
    if let (Some(span), false) = (&w.has_upstream, w.split.is_empty()) {
        bad(
            span.clone(),
            format!("route `{rname}`: give either `upstream` or [[route.split]], not both"),
        );
    }
    for s in w.split {
        if *s.weight.get_ref() > 10_000 {
            bad(
                s.weight.span(),
                format!("route `{rname}`: split weight must be 0 to 10000"),
            );
        }
        if let Some(i) = find(&s.upstream) {
            t.split.push((i, *s.weight.get_ref()));
        }
    }
    if let Some(s) = w.split.first()
        && w.split.iter().all(|s| *s.weight.get_ref() == 0)
    {
        bad(
            s.weight.span(),
            format!("route `{rname}`: every split weight is 0"),
        );
    }
    if let Some(on) = w.split_on {
        if w.split.is_empty() {
            bad(
                on.span(),
                format!("route `{rname}`: split_on needs [[route.split]]"),
            );
        }
        if matches!(on.get_ref(), HashOn::Param(_)) {
            bad(
                on.span(),
                format!("route `{rname}`: split_on is client_ip, header:NAME or cookie:NAME"),
            );
        }
        t.split_on = Some(on.get_ref().clone());
    }
    for wh in w.when {
        let c = wh.get_ref();
        let (header, name) = match (&c.header, &c.cookie) {
            (Some(h), None) if !h.is_empty() => (true, h.clone()),
            (None, Some(k)) if !k.is_empty() => (false, k.clone()),
            _ => {
                bad(
                    wh.span(),
                    format!("route `{rname}`: [[route.when]] needs one of header or cookie"),
                );
                continue;
            }
        };
        if let Some(upstream) = find(&c.upstream) {
            t.when.push(When {
                header,
                name,
                value: c.value.clone(),
                upstream,
            });
        }
    }
    if let Some(m) = w.mirror {
        let mc = m.get_ref();
        if mc.percent > 100 {
            bad(
                m.span(),
                format!("route `{rname}`: mirror percent must be 0 to 100"),
            );
        }
        if let Some(i) = find(&mc.upstream) {
            t.mirror = Some((i, mc.percent.min(100)));
        }
    }
    t
}
