//! Subscriptions: asked for (by an administrator, or by the consumer itself for a public
//! API), listed, and decided (approve, reject, revoke), each change audited.

use policy::catalogue::{State, Subscription, Visibility};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Manager;
use super::api::{Actor, Answer, Call, Refusal, body, param, refuse};
use super::entries::audit;
use super::store::Op;

/// `POST /tenants/{t}/subscriptions`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeIn {
    #[serde(default)]
    consumer: Option<String>,
    api: String,
}

impl Manager {
    /// `GET /tenants/{t}/subscriptions[?state=S]` (a consumer sees its own).
    pub(super) fn subscriptions(&self, who: &Actor, t: &str, query: &str) -> Value {
        let state = param(query, "state");
        let subs: Vec<&Subscription> = self
            .catalogue
            .subscriptions
            .iter()
            .filter(|s| s.tenant == t && visible(who, s))
            .filter(|s| state.is_none_or(|st| s.state.name() == st))
            .collect();
        json!({ "subscriptions": subs })
    }

    fn numbered(&self, who: &Actor, t: &str, id: &str) -> Result<&Subscription, Refusal> {
        let found = id.parse::<u64>().ok().and_then(|n| {
            self.catalogue
                .subscriptions
                .iter()
                .find(|s| s.id == n && s.tenant == t && visible(who, s))
        });
        found.map_or_else(
            || refuse(404, format!("no subscription {id} in tenant `{t}`")),
            Ok,
        )
    }

    pub(super) fn subscription(&self, who: &Actor, t: &str, id: &str) -> Answer {
        self.numbered(who, t, id).map(|s| (200, json!(s)))
    }

    /// `POST /tenants/{t}/subscriptions {consumer, api}`: pending until decided.
    pub(super) fn subscribe(&mut self, who: &Actor, t: &str, call: &Call) -> Answer {
        let want: SubscribeIn = body(call)?;
        let consumer = match (who, want.consumer) {
            (Actor::Consumer(_, me), None) => me.clone(),
            (Actor::Consumer(_, me), Some(c)) if c != *me => {
                return refuse(403, "a consumer subscribes itself only");
            }
            (_, Some(c)) => c,
            (_, None) => return refuse(422, "consumer: which consumer subscribes"),
        };
        let c = &self.catalogue;
        if !c
            .consumers
            .iter()
            .any(|m| m.tenant == t && m.name == consumer)
        {
            return refuse(422, format!("no consumer `{consumer}` in tenant `{t}`"));
        }
        let Some(api) = c.apis.iter().find(|a| a.tenant == t && a.name == want.api) else {
            return refuse(422, format!("no API `{}` in tenant `{t}`", want.api));
        };
        if matches!(who, Actor::Consumer(..)) && api.visibility == Visibility::Private {
            return refuse(
                403,
                format!(
                    "API `{}` is private: its administrators subscribe consumers",
                    api.name
                ),
            );
        }
        let existing = c
            .subscriptions
            .iter()
            .find(|s| s.tenant == t && s.consumer == consumer && s.api == api.name);
        if let Some(s) = existing.filter(|s| matches!(s.state, State::Pending | State::Approved)) {
            return refuse(
                409,
                format!("subscription {} is {} already", s.id, s.state.name()),
            );
        }
        // the catalogue version this change makes: never given to another subscription, even
        // after deletes, so the audit trail's numbers stay unambiguous
        let next = c.version + 1;
        let sub = Subscription {
            id: existing.map_or(next, |s| s.id),
            tenant: t.into(),
            consumer,
            api: api.name.clone(),
            state: State::Pending,
            requested_by: who.name(),
            requested_at_ms: super::now_ms(),
            decided_by: None,
            decided_at_ms: None,
        };
        let before = existing.map(|s| json!(s));
        let entry = audit(
            who,
            Some(t),
            "subscription.request",
            &format!("subscription {}", sub.id),
            before,
            Some(json!(sub)),
        );
        let doc = json!(sub);
        self.commit(&[Op::PutSubscription(sub)], entry, 201, "subscription", doc)
    }

    /// `POST /tenants/{t}/subscriptions/{id}/{approve,reject,revoke}`.
    pub(super) fn decide(&mut self, who: &Actor, t: &str, id: &str, action: &str) -> Answer {
        let s = self.numbered(who, t, id)?.clone();
        let to = match (action, s.state) {
            ("approve", State::Pending | State::Rejected | State::Revoked) => State::Approved,
            ("reject", State::Pending) => State::Rejected,
            ("revoke", State::Approved | State::Pending) => State::Revoked,
            ("approve" | "reject" | "revoke", from) => {
                return refuse(
                    409,
                    format!(
                        "subscription {} is {}: cannot {action} it",
                        s.id,
                        from.name()
                    ),
                );
            }
            _ => return refuse(404, format!("`{action}`: use approve, reject or revoke")),
        };
        let mut after = s.clone();
        after.state = to;
        after.decided_by = Some(who.name());
        after.decided_at_ms = Some(super::now_ms());
        let doc = json!(after);
        let entry = audit(
            who,
            Some(t),
            &format!("subscription.{action}"),
            &format!("subscription {}", s.id),
            Some(json!(s)),
            Some(doc.clone()),
        );
        self.commit(
            &[Op::PutSubscription(after)],
            entry,
            200,
            "subscription",
            doc,
        )
    }
}

/// A consumer sees its own subscriptions; administrators see all.
fn visible(who: &Actor, s: &Subscription) -> bool {
    match who {
        Actor::Consumer(t, c) => s.tenant == *t && s.consumer == *c,
        _ => true,
    }
}
