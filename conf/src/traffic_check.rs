//! Checks of an upstream's traffic settings that serde cannot make (ranges, combinations,
//! route parameters a hash names), each at the location of what is wrong.

use std::ops::Range;

use crate::error::ConfError;
use crate::model::{RouteConf, Upstream, UpstreamConf};
use crate::traffic::{BalanceConf, HashOn};

type Err<'a> = &'a dyn Fn(Range<usize>, String) -> ConfError;

/// Most weight one target may have (keeps weighted sums far from overflow).
const MAX_WEIGHT: u32 = 10_000;

/// The traffic settings of `u`.
pub(crate) fn check(u: &UpstreamConf, errs: &mut Vec<ConfError>, err: Err<'_>) {
    let name = u.name.get_ref();
    for t in &u.targets {
        let w = t.get_ref().weight;
        if w == 0 || w > MAX_WEIGHT {
            errs.push(err(
                t.span(),
                format!("upstream `{name}`: weight {w} must be 1 to {MAX_WEIGHT}"),
            ));
        }
    }
    let balance = *u.balance.get_ref();
    if let Some(h) = &u.hash_on
        && !balance.hashes()
    {
        errs.push(err(
            h.span(),
            format!(
                "upstream `{name}`: hash_on is used by balance = \"ring_hash\" or \"maglev\" only"
            ),
        ));
    }
    let bound = *u.hash_load_bound.get_ref();
    if !(1.0..=100.0).contains(&bound) {
        errs.push(err(
            u.hash_load_bound.span(),
            format!("upstream `{name}`: hash_load_bound {bound} must be 1.0 to 100.0"),
        ));
    }
    if let Some(h) = &u.health {
        let hc = h.get_ref();
        let mut bad = |msg: String| {
            errs.push(err(
                h.span(),
                format!("[upstream.health] of `{name}`: {msg}"),
            ))
        };
        if !hc.path.starts_with('/') {
            bad(format!("path `{}` must start with `/`", hc.path));
        }
        if hc.healthy_threshold == 0 || hc.unhealthy_threshold == 0 {
            bad("healthy_threshold and unhealthy_threshold must be at least 1".into());
        }
        if hc.interval.0 < std::time::Duration::from_millis(10) {
            bad("interval must be at least 10ms".into());
        }
        if hc.timeout.0.is_zero() || hc.timeout.0 > hc.interval.0 {
            bad("timeout must be more than 0 and at most interval".into());
        }
        if hc.statuses.iter().any(|s| !(100..=599).contains(s)) {
            bad("statuses must be 100 to 599".into());
        }
    }
    if let Some(o) = &u.outlier {
        let oc = o.get_ref();
        if oc.max_ejected_percent > 100 {
            errs.push(err(
                o.span(),
                format!("[upstream.outlier] of `{name}`: max_ejected_percent must be 0 to 100"),
            ));
        }
        if oc.base_ejection.0 > oc.max_ejection.0 {
            errs.push(err(
                o.span(),
                format!("[upstream.outlier] of `{name}`: base_ejection exceeds max_ejection"),
            ));
        }
    }
    if let Some(b) = &u.breaker {
        let bc = b.get_ref();
        let mut bad = |msg: &str| {
            errs.push(err(
                b.span(),
                format!("[upstream.breaker] of `{name}`: {msg}"),
            ));
        };
        if !(bc.failure_rate > 0.0 && bc.failure_rate <= 1.0) {
            bad("failure_rate must be more than 0.0 and at most 1.0");
        }
        if bc.trials == 0 || bc.trials > 100 {
            bad("trials must be 1 to 100");
        }
        if bc.window.0 < std::time::Duration::from_millis(10) {
            bad("window must be at least 10ms");
        }
        if bc.cool_down.0 < std::time::Duration::from_millis(1) {
            bad("cool_down must be at least 1ms");
        }
        if bc
            .fallback_status
            .is_some_and(|s| !(200..=599).contains(&s))
        {
            bad("fallback_status must be 200 to 599");
        }
        if bc.fallback_status.is_none() && !bc.fallback_body.is_empty() {
            bad("fallback_body needs fallback_status");
        }
    }
    if let Some(d) = &u.discovery {
        let dc = d.get_ref();
        let mut bad = |msg: &str| {
            errs.push(err(
                d.span(),
                format!("[upstream.discovery] of `{name}`: {msg}"),
            ));
        };
        match dc.kind {
            crate::discovery::DiscoveryKind::File if dc.file.is_none() => {
                bad("kind = \"file\" needs file");
            }
            crate::discovery::DiscoveryKind::File if !u.targets.is_empty() => {
                bad("with kind = \"file\" the targets come from the file: leave targets out");
            }
            crate::discovery::DiscoveryKind::Dns if dc.file.is_some() => {
                bad("file is for kind = \"file\"");
            }
            _ => {}
        }
        if dc.refresh.0 < std::time::Duration::from_millis(10) || dc.max_refresh.0 < dc.refresh.0 {
            bad("refresh must be at least 10ms and max_refresh at least refresh");
        }
    }
    if let Some(r) = &u.retry {
        let rc = r.get_ref();
        if !(0.0..=1.0).contains(&rc.budget) {
            errs.push(err(
                r.span(),
                format!("[upstream.retry] of `{name}`: budget must be 0.0 to 1.0 (a share)"),
            ));
        }
        if rc.retries > 8 {
            errs.push(err(
                r.span(),
                format!("[upstream.retry] of `{name}`: at most 8 retries"),
            ));
        }
        for s in &rc.on_status {
            if !(400..=599).contains(s.get_ref()) {
                errs.push(err(
                    s.span(),
                    format!(
                        "[upstream.retry] of `{name}`: on_status {} is not an error status (400 to 599)",
                        s.get_ref()
                    ),
                ));
            }
        }
    }
}

/// A route forwarding to `up`: a `param:NAME` hash needs `{NAME}` in its path.
pub(crate) fn check_route(
    rname: &str,
    r: &RouteConf,
    up: &Upstream,
    errs: &mut Vec<ConfError>,
    err: Err<'_>,
) {
    let Some(h) = &up.conf.hash_on else {
        return;
    };
    if let HashOn::Param(p) = h.get_ref()
        && matches!(
            up.conf.balance.get_ref(),
            BalanceConf::RingHash | BalanceConf::Maglev
        )
    {
        let path = r.path.get_ref();
        if !path.contains(&format!("{{{p}}}")) && !path.contains(&format!("{{*{p}}}")) {
            errs.push(err(
                r.path.span(),
                format!(
                    "route `{rname}`: upstream `{}` hashes on param `{p}`, which path `{path}` does not capture",
                    up.name
                ),
            ));
        }
    }
}
