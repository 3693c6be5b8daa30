//! The management routes of the admin API: who asks (the admin token's holder, a tenant's
//! administrator with the tenant's token, a consumer with its own API key), what each may
//! reach (a tenant's administrator: that tenant only; a consumer: its own subscriptions and
//! its tenant's public APIs), and which entry operation a request is.
//!
//! | request | who |
//! |---|---|
//! | `GET /tenants`, `POST /tenants`, `DELETE /tenants/{t}`, `GET /audit` | admin (`GET /tenants`: a tenant sees itself) |
//! | `GET /tenants/{t}`, `GET /tenants/{t}/audit` | admin, tenant |
//! | `GET`, `POST /tenants/{t}/{apis,plans,consumers}`; `GET`, `PUT`, `DELETE …/{name}` | admin, tenant (`GET …/apis`: consumers too) |
//! | `GET`, `POST /tenants/{t}/subscriptions`, `GET …/{id}` | admin, tenant, the consumer itself |
//! | `POST /tenants/{t}/subscriptions/{id}/{approve,reject,revoke}` | admin, tenant |
//! | `GET /analytics`, `GET /trends` | admin |
//! | `GET /tenants/{t}/analytics`, `GET /tenants/{t}/trends` | admin, tenant |

use policy::catalogue::{Catalogue, ct_eq, parse_sha256};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Manager;

/// One management request, as the admin listener read it.
#[derive(Debug)]
pub struct Call {
    /// Its method.
    pub method: proto::Method,
    /// Its path (without the query).
    pub path: String,
    /// Its query.
    pub query: String,
    /// Its body (JSON when there is one).
    pub body: Vec<u8>,
    /// It carries the admin token (or the admin listener has none).
    pub root: bool,
    /// Its bearer token, when it has one (a tenant's administrator).
    pub bearer: Option<Vec<u8>>,
    /// Its `X-Api-Key`, when it has one (a consumer).
    pub api_key: Option<Vec<u8>>,
}

/// The answer: a status and a JSON body, or a problem's detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Done: the status and the document.
    Done(u16, String),
    /// Refused: the status and why.
    Problem(u16, String),
    /// A page (HTML).
    Page(String),
}

/// A refusal: its status and detail.
pub(super) type Refusal = (u16, String);

/// What an operation gives back.
pub(super) type Answer = Result<(u16, Value), Refusal>;

/// Who asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Actor {
    /// The admin token's holder: everything.
    Root,
    /// An administrator of this tenant.
    Tenant(String),
    /// This consumer (tenant, name), with its own key.
    Consumer(String, String),
}

impl Actor {
    /// Its name in the audit trail and in `requested_by`.
    pub(super) fn name(&self) -> String {
        match self {
            Actor::Root => "admin".into(),
            Actor::Tenant(t) => format!("tenant:{t}"),
            Actor::Consumer(t, c) => format!("consumer:{t}/{c}"),
        }
    }

    /// True when it administers tenant `t`.
    pub(super) fn administers(&self, t: &str) -> bool {
        match self {
            Actor::Root => true,
            Actor::Tenant(mine) => mine == t,
            Actor::Consumer(..) => false,
        }
    }
}

pub(super) fn refuse<T>(status: u16, detail: impl Into<String>) -> Result<T, Refusal> {
    Err((status, detail.into()))
}

/// Who `call` is from, by its credentials.
fn actor(c: &Catalogue, call: &Call) -> Option<Actor> {
    if call.root {
        return Some(Actor::Root);
    }
    if let Some(token) = &call.bearer {
        let d: [u8; 32] = Sha256::digest(token).into();
        // every tenant is compared, so the time does not tell which matched
        let mut found = None;
        for t in &c.tenants {
            if parse_sha256(&t.admin_token_sha256).is_some_and(|h| ct_eq(&h, &d)) {
                found = Some(Actor::Tenant(t.name.clone()));
            }
        }
        return found;
    }
    let key = call.api_key.as_ref()?;
    let d: [u8; 32] = Sha256::digest(key).into();
    c.consumers
        .iter()
        .find(|m| {
            m.keys_sha256
                .iter()
                .any(|k| parse_sha256(k).is_some_and(|h| ct_eq(&h, &d)))
        })
        .map(|m| Actor::Consumer(m.tenant.clone(), m.name.clone()))
}

/// Whose trends a `GET` asks for: `/trends` (all tenants: `Some(None)`) or
/// `/tenants/{t}/trends`; `None` for any other request.
fn trend_scope(call: &Call) -> Option<Option<&str>> {
    if call.method != proto::Method::Get {
        return None;
    }
    match call
        .path
        .trim_matches('/')
        .split('/')
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["trends"] => Some(None),
        ["tenants", t, "trends"] => Some(Some(t)),
        _ => None,
    }
}

/// The body as JSON of type `T`: 400 for a body that is not JSON, 422 for JSON that is not
/// such an entry (serde's words either way).
pub(super) fn body<T: serde::de::DeserializeOwned>(call: &Call) -> Result<T, Refusal> {
    serde_json::from_slice(&call.body).or_else(|e| {
        let status = if e.is_data() { 422 } else { 400 };
        refuse(status, format!("the body: {e}"))
    })
}

/// A query parameter's value.
pub(super) fn param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl Manager {
    /// Answers one management request.
    pub(super) fn call(&mut self, call: Call) -> Reply {
        // another node's changes first (at most every REFRESH_EVERY: a flood of requests
        // costs the store nothing more)
        if self.refreshed.elapsed() >= super::REFRESH_EVERY {
            self.refresh();
        }
        let answer = match actor(&self.catalogue, &call) {
            None => refuse(
                401,
                "a management request needs the admin token, a tenant's token or a consumer's key",
            ),
            Some(who) => match trend_scope(&call) {
                Some(scope) => return self.page(&who, scope, &call),
                None => self.route(&who, &call),
            },
        };
        match answer {
            Ok((status, v)) => Reply::Done(status, v.to_string()),
            Err((status, why)) => Reply::Problem(status, why),
        }
    }

    /// A trend page, for the admin (all tenants) or a tenant's administrator.
    fn page(&mut self, who: &Actor, tenant: Option<&str>, call: &Call) -> Reply {
        let allowed = match tenant {
            None => *who == Actor::Root,
            Some(t) => who.administers(t),
        };
        if !allowed {
            return Reply::Problem(403, "these trends are not yours to read".into());
        }
        if let Some(t) = tenant
            && !self.catalogue.tenants.iter().any(|x| x.name == t)
        {
            return Reply::Problem(404, format!("no tenant `{t}`"));
        }
        match self.trends(tenant, call) {
            Ok(html) => Reply::Page(html),
            Err((status, why)) => Reply::Problem(status, why),
        }
    }

    fn route(&mut self, who: &Actor, call: &Call) -> Answer {
        use proto::Method::{Get, Post};
        let parts: Vec<&str> = call.path.trim_matches('/').split('/').collect();
        let m = call.method;
        match (m, parts.as_slice()) {
            (Get, ["audit"]) if *who == Actor::Root => self.audit(None, call),
            (Get, ["audit"]) => refuse(
                403,
                "the whole audit trail is the admin's; a tenant reads /tenants/{name}/audit",
            ),
            (Get, ["tenants"]) => Ok((200, self.tenants(who))),
            (Get, ["analytics" | "trends"]) if *who != Actor::Root => refuse(
                403,
                "all tenants' figures are the admin's; a tenant reads /tenants/{name}/analytics",
            ),
            (Get, ["analytics"]) => self.analytics(None, call),
            (Post, ["tenants"]) if *who == Actor::Root => self.put_tenant(who, None, call),
            (Post, ["tenants"]) => refuse(403, "only the admin makes tenants"),
            (_, ["tenants", t, rest @ ..]) => {
                if !who.administers(t) && !matches!(who, Actor::Consumer(mine, _) if mine == t) {
                    return refuse(403, format!("not an administrator of tenant `{t}`"));
                }
                if !self.catalogue.tenants.iter().any(|x| x.name == *t) {
                    return refuse(404, format!("no tenant `{t}`"));
                }
                self.tenant_route(who, m, t, rest, call)
            }
            (_, ["audit" | "tenants" | "analytics" | "trends"]) => {
                refuse(405, "method not allowed")
            }
            _ => refuse(404, "no such management resource"),
        }
    }

    fn tenant_route(
        &mut self,
        who: &Actor,
        m: proto::Method,
        t: &str,
        rest: &[&str],
        call: &Call,
    ) -> Answer {
        use proto::Method::{Delete, Get, Post, Put};
        let admin = who.administers(t);
        match (m, rest) {
            (Get, []) if admin => Ok((200, self.overview(t))),
            (Delete, []) if *who == Actor::Root => self.delete_tenant(who, t),
            (Delete, []) => refuse(403, "only the admin removes tenants"),
            (Put, []) if *who == Actor::Root => self.put_tenant(who, Some(t), call),
            (Put, []) => refuse(403, "only the admin changes tenants"),
            (Get, ["audit"]) if admin => self.audit(Some(t), call),
            (Get, ["analytics"]) if admin => self.analytics(Some(t), call),
            (Get, ["subscriptions"]) => Ok((200, self.subscriptions(who, t, &call.query))),
            (Post, ["subscriptions"]) => self.subscribe(who, t, call),
            (Get, ["subscriptions", id]) => self.subscription(who, t, id),
            (Post, ["subscriptions", id, action]) if admin => self.decide(who, t, id, action),
            (Get, ["apis"]) => Ok((200, self.list(who, t, "apis"))),
            (Get | Post, [kind @ ("apis" | "plans" | "consumers")]) if admin => match m {
                Get => Ok((200, self.list(who, t, kind))),
                _ => self.put_entry(who, t, kind, None, call),
            },
            (Get, [kind @ ("apis" | "plans" | "consumers"), name]) if admin => {
                self.get_entry(t, kind, name)
            }
            (Put, [kind @ ("apis" | "plans" | "consumers"), name]) if admin => {
                self.put_entry(who, t, kind, Some(name), call)
            }
            (Delete, [kind @ ("apis" | "plans" | "consumers"), name]) if admin => {
                self.delete_entry(who, t, kind, name)
            }
            _ if !admin => refuse(403, format!("a consumer may not do this in tenant `{t}`")),
            (
                _,
                []
                | [
                    "audit" | "subscriptions" | "apis" | "plans" | "consumers",
                    ..,
                ],
            ) => refuse(405, "method not allowed"),
            _ => refuse(404, "no such management resource"),
        }
    }

    /// The tenants `who` may see.
    fn tenants(&self, who: &Actor) -> Value {
        let seen: Vec<&str> = self
            .catalogue
            .tenants
            .iter()
            .filter(|t| who.administers(&t.name))
            .map(|t| t.name.as_str())
            .collect();
        json!({ "tenants": seen })
    }

    /// Everything of tenant `t`.
    pub(super) fn overview(&self, t: &str) -> Value {
        let c = &self.catalogue;
        json!({
            "name": t,
            "apis": c.apis.iter().filter(|a| a.tenant == t).collect::<Vec<_>>(),
            "plans": c.plans.iter().filter(|a| a.tenant == t).collect::<Vec<_>>(),
            "consumers": c.consumers.iter().filter(|a| a.tenant == t).collect::<Vec<_>>(),
            "subscriptions": c.subscriptions.iter().filter(|a| a.tenant == t).collect::<Vec<_>>(),
        })
    }

    /// `GET /audit`, `GET /tenants/{t}/audit?limit=N` (default 100, at most 1000).
    fn audit(&mut self, tenant: Option<&str>, call: &Call) -> Answer {
        let limit = match param(&call.query, "limit").map(str::parse::<u64>) {
            None => 100,
            Some(Ok(n)) if (1..=1000).contains(&n) => n,
            Some(_) => return refuse(400, "limit must be 1 to 1000"),
        };
        match self.store.audit(tenant, limit) {
            Ok(entries) => Ok((200, json!({ "audit": entries }))),
            Err(e) => refuse(503, format!("the store failed: {e}")),
        }
    }
}
