//! Subscriptions (`[management]`): a route that belongs to an API of the management
//! catalogue admits a consumer only while it holds an approved subscription to that API,
//! and within its plan (the routes the plan allows, its requests per minute and per day,
//! shared out between the shards and counted on this node). It goes after the authentication stage (`api_key` with
//! `catalogue = true`, or `jwt` whose subjects or client ids the catalogue lists): it checks
//! the identity they set. Refusals: 401 without one; 403 for a consumer the catalogue does
//! not know, for a missing, pending, rejected or revoked subscription (the detail names the
//! subscription), for a route outside the plan; 429 over the plan's rate.
//!
//! ```toml
//! [[route.policy]]
//! kind = "subscription"
//! ```

use std::borrow::Cow;
use std::cell::RefCell;
use std::time::UNIX_EPOCH;

use ahash::AHashMap;
use proto::RequestHead;
use serde::Deserialize;

use crate::catalogue::view::PlanView;
use crate::catalogue::{self, State, View};
use crate::exchange::Exchange;
use crate::stage::{Rejection, Stage, StageBuild, StageContext, Verdict};

/// `[[route.policy]] kind = "subscription"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A route that no API of the catalogue lists: "deny" (403) or "allow". Default "deny".
    #[serde(default = "default_unlisted")]
    pub unlisted: String,
}

fn default_unlisted() -> String {
    "deny".into()
}

/// Takes back one request of `consumer` counted in `counts`.
fn give_back(counts: &Counts, consumer: &str) {
    if let Some(n) = counts.borrow_mut().1.get_mut(consumer) {
        *n = n.saturating_sub(1);
    }
}

/// One window's requests per consumer: the window's number, the counts.
type Counts = RefCell<(u64, AHashMap<Box<str>, u64>)>;

thread_local! {
    /// This minute's requests per consumer on this shard, over every route of every plan
    /// (a plan's rate is the consumer's, whichever routes it calls); cleared when the minute
    /// turns.
    static MINUTE: Counts = RefCell::new((0, AHashMap::new()));
    /// Today's (UTC), likewise, for plans' quotas.
    static DAY: Counts = RefCell::new((0, AHashMap::new()));
}

/// The stage.
pub struct Subscription {
    route: Box<str>,
    allow_unlisted: bool,
    shards: u64,
}

impl StageBuild for Subscription {
    const KIND: &'static str = "subscription";
    type Config = Config;

    fn build(c: Config, ctx: &StageContext<'_>) -> Result<Subscription, String> {
        if !ctx.management {
            return Err("needs [management]: subscriptions live in its catalogue".into());
        }
        let Some((_, route)) = &ctx.address.route else {
            return Err("goes on a route ([[route.policy]]): APIs are made of routes".into());
        };
        let allow_unlisted = match c.unlisted.as_str() {
            "deny" => false,
            "allow" => true,
            other => return Err(format!("unlisted = {other:?}: use \"deny\" or \"allow\"")),
        };
        Ok(Subscription {
            route: (**route).into(),
            allow_unlisted,
            shards: ctx.shards.max(1) as u64,
        })
    }
}

fn refuse(
    status: u16,
    reason: &'static str,
    detail: impl Into<Cow<'static, str>>,
) -> Verdict<'static> {
    Verdict::Reject(Rejection::new(status, reason, detail))
}

impl Subscription {
    /// Counts a request of `consumer` in the current window of `span` seconds (counts in
    /// `counts`); the seconds until the next window when this shard's share of `limit` is
    /// spent.
    fn spend(
        &self,
        counts: &Counts,
        span: u64,
        consumer: &str,
        limit: u64,
        ex: &Exchange,
    ) -> Option<u64> {
        let secs = ex
            .wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // the shard's share, rounded down (at least one): the shards together never pass it
        let share = (limit / self.shards).max(1);
        let (window, counts) = &mut *counts.borrow_mut();
        if *window != secs / span {
            *window = secs / span;
            counts.clear();
        }
        let n = match counts.get_mut(consumer) {
            Some(n) => n,
            None => counts.entry(consumer.into()).or_insert(0),
        };
        if *n >= share {
            return Some(span - secs % span);
        }
        *n += 1;
        None
    }

    fn check(&self, view: &View, ex: &Exchange) -> Result<(), Verdict<'static>> {
        let Some(id) = &ex.identity else {
            return Err(refuse(
                401,
                "subscription.anonymous",
                "an authenticated consumer is required",
            ));
        };
        let Some((a, api)) = view.api_of(&self.route) else {
            if self.allow_unlisted {
                return Ok(());
            }
            return Err(refuse(
                403,
                "subscription.unlisted",
                "this route is not part of a published API",
            ));
        };
        let client = || id.claim("client_id").or_else(|| id.claim("azp"));
        let found = view
            .by_principal(&id.consumer)
            .or_else(|| client().and_then(|c| view.by_principal(c)));
        let api_name = &api.full;
        let Some((m, member)) = found.filter(|(m, _)| view.tenant_of(*m) == Some(&*api.tenant))
        else {
            let detail = format!("`{}` is not a consumer of API `{api_name}`", id.consumer);
            return Err(refuse(403, "subscription.unknown_consumer", detail));
        };
        let who = &member.identity.consumer;
        let refusal = match view.subscription(m, a) {
            Some((State::Approved, _)) => None,
            Some((State::Pending, n)) => Some((
                "subscription.pending",
                format!("subscription {n} of `{who}` to API `{api_name}` is pending approval"),
            )),
            Some((State::Rejected, n)) => Some((
                "subscription.rejected",
                format!("subscription {n} of `{who}` to API `{api_name}` was rejected"),
            )),
            Some((State::Revoked, n)) => Some((
                "subscription.revoked",
                format!("subscription {n} of `{who}` to API `{api_name}` was revoked"),
            )),
            None => Some((
                "subscription.missing",
                format!("`{who}` has no subscription to API `{api_name}`; ask for one"),
            )),
        };
        if let Some((reason, detail)) = refusal {
            return Err(refuse(403, reason, detail));
        }
        match view.plan(member) {
            Some(plan) => self.within(plan, who, ex),
            None => Ok(()),
        }
    }

    /// The plan's routes, rate and quota, for a request of `who`.
    fn within(&self, plan: &PlanView, who: &str, ex: &Exchange) -> Result<(), Verdict<'static>> {
        if !plan.allows(&self.route) {
            let detail = format!(
                "plan `{}` does not include route `{}`",
                plan.name, self.route
            );
            return Err(refuse(403, "subscription.plan_route", detail));
        }
        let rate = plan.rate_per_minute;
        if let Some(after) = rate.and_then(|l| MINUTE.with(|m| self.spend(m, 60, who, l, ex))) {
            let detail = format!(
                "plan `{}` allows {} requests per minute",
                plan.name,
                plan.rate_per_minute.unwrap_or(0)
            );
            let r = Rejection::new(429, "subscription.rate", detail)
                .with_field("Retry-After", &after.to_string());
            return Err(Verdict::Reject(r));
        }
        let daily = plan.quota_per_day;
        if let Some(after) = daily.and_then(|l| DAY.with(|d| self.spend(d, 86_400, who, l, ex))) {
            // refused: the minute's count gives the request back
            if rate.is_some() {
                MINUTE.with(|m| give_back(m, who));
            }
            let detail = format!(
                "plan `{}` allows {} requests per day",
                plan.name,
                daily.unwrap_or(0)
            );
            let r = Rejection::new(429, "subscription.quota", detail)
                .with_field("Retry-After", &after.to_string());
            return Err(Verdict::Reject(r));
        }
        Ok(())
    }
}

impl Stage for Subscription {
    fn on_request(&self, _head: &RequestHead, _buf: &[u8], ex: &mut Exchange) -> Verdict<'_> {
        let Some(view) = catalogue::current() else {
            return refuse(
                503,
                "subscription.no_catalogue",
                "the catalogue is not loaded yet",
            );
        };
        match self.check(&view, ex) {
            Ok(()) => Verdict::Continue,
            Err(v) => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::time::{Duration, Instant, UNIX_EPOCH};

    use super::*;
    use crate::catalogue::view::tests::sample;
    use crate::exchange::Identity;
    use crate::letter::Address;

    fn stage(route: &str, unlisted: &str, shards: usize) -> Result<Subscription, String> {
        let dir = std::path::Path::new(".");
        let address = Address {
            route: Some((0, route.into())),
            position: 0,
        };
        let mut ctx = StageContext::alone(shards, dir);
        ctx.address = &address;
        ctx.management = true;
        Subscription::build(
            Config {
                unlisted: unlisted.into(),
            },
            &ctx,
        )
    }

    fn ex(consumer: Option<&str>, claims: &[(&str, &str)], secs: u64) -> Exchange {
        let mut ex = Exchange::new(
            "127.0.0.1:1".parse().unwrap_or_else(|_| unreachable!()),
            Instant::now(),
            crate::RouteId(0),
            crate::Params::default(),
        );
        ex.wall = UNIX_EPOCH + Duration::from_secs(secs);
        ex.identity = consumer.map(|c| {
            Rc::new(Identity {
                consumer: c.into(),
                scopes: Rc::from(Vec::new()),
                roles: Rc::from(Vec::new()),
                claims: claims
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
            })
        });
        ex
    }

    fn reason(s: &Subscription, v: &View, ex: &Exchange) -> &'static str {
        match s.check(v, ex) {
            Ok(()) => "ok",
            Err(Verdict::Reject(r)) => r.reason,
            Err(_) => "other",
        }
    }

    #[test]
    fn admits_an_approved_consumer_by_identity_subject_or_client_id_only() -> Result<(), String> {
        let mut c = sample();
        let v = View::new(&c);
        let s = stage("orders", "deny", 1)?;
        for id in ["acme/shop", "user-1"] {
            assert_eq!(reason(&s, &v, &ex(Some(id), &[], 0)), "ok", "{id}");
        }
        assert_eq!(
            reason(
                &s,
                &v,
                &ex(Some("someone"), &[("client_id", "shop-app")], 0)
            ),
            "ok"
        );
        assert_eq!(
            reason(&s, &v, &ex(Some("someone"), &[("azp", "shop-app")], 0)),
            "ok"
        );
        assert_eq!(
            reason(&s, &v, &ex(Some("someone"), &[], 0)),
            "subscription.unknown_consumer"
        );
        assert_eq!(reason(&s, &v, &ex(None, &[], 0)), "subscription.anonymous");
        // the plan leaves out route "order" of the same API
        assert_eq!(
            reason(&stage("order", "deny", 1)?, &v, &ex(Some("user-1"), &[], 0)),
            "subscription.plan_route"
        );
        // a route of no API: refused, or let through when unlisted = "allow"
        assert_eq!(
            reason(&stage("misc", "deny", 1)?, &v, &ex(Some("user-1"), &[], 0)),
            "subscription.unlisted"
        );
        assert_eq!(
            reason(&stage("misc", "allow", 1)?, &v, &ex(Some("user-1"), &[], 0)),
            "ok"
        );
        for (state, why) in [
            (State::Pending, "subscription.pending"),
            (State::Rejected, "subscription.rejected"),
            (State::Revoked, "subscription.revoked"),
        ] {
            c.subscriptions[0].state = state;
            let v = View::new(&c);
            let e = ex(Some("acme/shop"), &[], 0);
            assert_eq!(reason(&s, &v, &e), why);
            let Err(Verdict::Reject(r)) = s.check(&v, &e) else {
                unreachable!()
            };
            assert!(
                r.detail
                    .contains("subscription 3 of `acme/shop` to API `acme/orders`"),
                "{}",
                r.detail
            );
        }
        c.subscriptions.clear();
        assert_eq!(
            reason(&s, &View::new(&c), &ex(Some("acme/shop"), &[], 0)),
            "subscription.missing"
        );
        Ok(())
    }

    #[test]
    fn a_consumer_of_another_tenant_is_not_one_of_the_apis() -> Result<(), String> {
        let mut c = sample();
        c.consumers[0].tenant = "globex".into();
        c.subscriptions[0].tenant = "globex".into();
        let v = View::new(&c);
        let e = ex(Some("globex/shop"), &[], 0);
        assert_eq!(
            reason(&stage("orders", "deny", 1)?, &v, &e),
            "subscription.unknown_consumer"
        );
        Ok(())
    }

    #[test]
    fn the_plans_rate_is_shared_out_between_shards_per_minute() -> Result<(), String> {
        let mut c = sample();
        c.plans[0].routes.push("order".into());
        let v = View::new(&c);
        // 60 a minute over 2 shards: 30 here, over both routes of the plan
        let s = stage("orders", "deny", 2)?;
        let other = stage("order", "deny", 2)?;
        for _ in 0..10 {
            assert_eq!(
                reason(&other, &v, &ex(Some("user-1"), &[], 1_700_000_050)),
                "ok"
            );
        }
        let t0 = 1_700_000_040; // 0 s into a minute (1_700_000_040 = 28_333_334 × 60)
        for _ in 0..20 {
            assert_eq!(reason(&s, &v, &ex(Some("user-1"), &[], t0 + 10)), "ok");
        }
        let Err(Verdict::Reject(r)) = s.check(&v, &ex(Some("user-1"), &[], t0 + 10)) else {
            return Err("the 31st was admitted".into());
        };
        assert_eq!((r.status, r.reason), (429, "subscription.rate"));
        assert!(String::from_utf8_lossy(&r.fields).contains("Retry-After: 50"));
        // the next minute starts afresh
        assert_eq!(reason(&s, &v, &ex(Some("user-1"), &[], t0 + 60)), "ok");
        // 31 of the day's 50 here (100 over 2 shards; the refused one not counted) so far
        for m in 2..=20 {
            assert_eq!(
                reason(&s, &v, &ex(Some("user-1"), &[], t0 + 60 * m)),
                "ok",
                "minute {m}"
            );
        }
        let Err(Verdict::Reject(r)) = s.check(&v, &ex(Some("user-1"), &[], t0 + 60 * 21)) else {
            return Err("past the day's share".into());
        };
        assert_eq!((r.status, r.reason), (429, "subscription.quota"));
        Ok(())
    }
}
