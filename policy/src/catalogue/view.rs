//! A shard's compiled view of one catalogue version: consumers by key digest and by principal
//! (identity, JWT subject, client id), the API a route belongs to, and each (consumer, API)'s
//! subscription. Kept per shard thread (`install` when a version arrives, `current` per
//! request), so a lookup touches nothing another core writes.

use std::cell::RefCell;
use std::rc::Rc;

use ahash::AHashMap;

use super::{Catalogue, State, parse_sha256};
use crate::exchange::Identity;

/// A consumer as the data path sees it.
#[derive(Debug)]
pub struct Member {
    /// Its identity (`tenant/name`, groups as roles).
    pub identity: Rc<Identity>,
    /// Its plan, as an index into the view's plans.
    plan: Option<u32>,
}

/// A plan as the data path sees it.
#[derive(Debug)]
pub struct PlanView {
    /// `tenant/name`.
    pub name: Box<str>,
    /// Requests per minute per consumer, fleet-wide.
    pub rate_per_minute: Option<u64>,
    /// Requests per day per consumer.
    pub quota_per_day: Option<u64>,
    /// The routes it allows (empty: all).
    pub routes: Box<[Box<str>]>,
}

impl PlanView {
    /// True when the plan lets a consumer call `route`.
    pub fn allows(&self, route: &str) -> bool {
        self.routes.is_empty() || self.routes.iter().any(|r| &**r == route)
    }
}

/// An API as the data path sees it.
#[derive(Debug)]
pub struct ApiView {
    /// Its tenant.
    pub tenant: Box<str>,
    /// Its name.
    pub name: Box<str>,
    /// `tenant/name`, as refusals name it.
    pub full: Box<str>,
}

/// One catalogue version, compiled for lookups.
#[derive(Debug, Default)]
pub struct View {
    /// The catalogue version it was made from.
    pub version: u64,
    keys: AHashMap<[u8; 32], u32>,
    principals: AHashMap<Box<str>, u32>,
    members: Vec<Member>,
    member_tenant: Vec<u32>,
    tenants: Vec<Box<str>>,
    route_api: AHashMap<Box<str>, u32>,
    apis: Vec<ApiView>,
    plans: Vec<PlanView>,
    subscriptions: AHashMap<(u32, u32), (State, u64)>,
}

/// A consumer found in the view: its index and what it is.
pub type Found<'v> = (u32, &'v Member);

impl View {
    /// Compiles `c`.
    pub fn new(c: &Catalogue) -> View {
        let mut v = View {
            version: c.version,
            ..View::default()
        };
        v.tenants = c.tenants.iter().map(|t| t.name.as_str().into()).collect();
        let tenant_of = |name: &str| c.tenants.iter().position(|t| t.name == name);
        let mut plan_at = AHashMap::new();
        for p in &c.plans {
            plan_at.insert((p.tenant.as_str(), p.name.as_str()), v.plans.len() as u32);
            v.plans.push(PlanView {
                name: format!("{}/{}", p.tenant, p.name).into(),
                rate_per_minute: p.rate_per_minute,
                quota_per_day: p.quota_per_day,
                routes: p.routes.iter().map(|r| r.as_str().into()).collect(),
            });
        }
        let mut api_at = AHashMap::new();
        for a in &c.apis {
            let i = v.apis.len() as u32;
            api_at.insert((a.tenant.as_str(), a.name.as_str()), i);
            for r in &a.routes {
                v.route_api.insert(r.as_str().into(), i);
            }
            v.apis.push(ApiView {
                tenant: a.tenant.as_str().into(),
                name: a.name.as_str().into(),
                full: format!("{}/{}", a.tenant, a.name).into(),
            });
        }
        let mut member_at = AHashMap::new();
        for m in &c.consumers {
            let Some(t) = tenant_of(&m.tenant) else {
                continue;
            };
            let i = v.members.len() as u32;
            member_at.insert((m.tenant.as_str(), m.name.as_str()), i);
            let identity = m.identity();
            for k in m.keys_sha256.iter().filter_map(|k| parse_sha256(k)) {
                v.keys.insert(k, i);
            }
            let names = m.jwt_subjects.iter().chain(&m.client_ids);
            for p in names.map(String::as_str).chain([identity.as_str()]) {
                v.principals.insert(p.into(), i);
            }
            let plan = m
                .plan
                .as_deref()
                .and_then(|p| plan_at.get(&(m.tenant.as_str(), p)).copied());
            v.members.push(Member {
                identity: Rc::new(Identity {
                    consumer: identity.into(),
                    scopes: Rc::from(Vec::new()),
                    roles: m.groups.iter().map(|g| g.as_str().into()).collect(),
                    claims: Rc::from(Vec::new()),
                }),
                plan,
            });
            v.member_tenant.push(t as u32);
        }
        for s in &c.subscriptions {
            let m = member_at.get(&(s.tenant.as_str(), s.consumer.as_str()));
            let a = api_at.get(&(s.tenant.as_str(), s.api.as_str()));
            if let (Some(&m), Some(&a)) = (m, a) {
                v.subscriptions.insert((m, a), (s.state, s.id));
            }
        }
        v
    }

    /// The consumer whose API key has this SHA-256 digest.
    pub fn by_key(&self, digest: &[u8; 32]) -> Option<Found<'_>> {
        let i = *self.keys.get(digest)?;
        Some((i, self.members.get(i as usize)?))
    }

    /// The consumer an authenticated principal is: its `tenant/name`, one of its JWT
    /// subjects or client ids.
    pub fn by_principal(&self, principal: &str) -> Option<Found<'_>> {
        let i = *self.principals.get(principal)?;
        Some((i, self.members.get(i as usize)?))
    }

    /// The API `route` belongs to, with its index.
    pub fn api_of(&self, route: &str) -> Option<(u32, &ApiView)> {
        let i = *self.route_api.get(route)?;
        Some((i, self.apis.get(i as usize)?))
    }

    /// The consumer's tenant's name.
    pub fn tenant_of(&self, member: u32) -> Option<&str> {
        let t = *self.member_tenant.get(member as usize)?;
        self.tenants.get(t as usize).map(|t| &**t)
    }

    /// The state and number of the consumer's subscription to the API, when it has one.
    pub fn subscription(&self, member: u32, api: u32) -> Option<(State, u64)> {
        self.subscriptions.get(&(member, api)).copied()
    }

    /// The consumer's plan.
    pub fn plan(&self, member: &Member) -> Option<&PlanView> {
        self.plans.get(member.plan? as usize)
    }
}

thread_local! {
    static VIEW: RefCell<Option<Rc<View>>> = const { RefCell::new(None) };
}

/// Compiles `c` and makes it this thread's (shard's) view from now on.
pub fn install(c: &Catalogue) {
    let v = Rc::new(View::new(c));
    VIEW.with(|s| *s.borrow_mut() = Some(v));
}

/// This thread's view (`None` until a catalogue was installed).
pub fn current() -> Option<Rc<View>> {
    VIEW.with(|s| s.borrow().clone())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::catalogue::{Api, Consumer, Plan, Subscription, Tenant, Visibility};

    /// A catalogue: tenant acme with API orders (routes orders, order), plan gold (60 a
    /// minute, route orders only), consumer shop approved for orders; tenant globex.
    pub(crate) fn sample() -> Catalogue {
        let tenant = |n: &str| Tenant {
            name: n.into(),
            admin_token_sha256: String::new(),
            routes: Vec::new(),
        };
        Catalogue {
            version: 7,
            tenants: vec![tenant("acme"), tenant("globex")],
            apis: vec![Api {
                tenant: "acme".into(),
                name: "orders".into(),
                routes: vec!["orders".into(), "order".into()],
                visibility: Visibility::Public,
            }],
            plans: vec![Plan {
                tenant: "acme".into(),
                name: "gold".into(),
                rate_per_minute: Some(60),
                quota_per_day: Some(100),
                routes: vec!["orders".into()],
            }],
            consumers: vec![Consumer {
                tenant: "acme".into(),
                name: "shop".into(),
                plan: Some("gold".into()),
                groups: vec!["buyers".into()],
                keys_sha256: vec!["ab".repeat(32)],
                jwt_subjects: vec!["user-1".into()],
                client_ids: vec!["shop-app".into()],
            }],
            subscriptions: vec![Subscription {
                id: 3,
                tenant: "acme".into(),
                consumer: "shop".into(),
                api: "orders".into(),
                state: State::Approved,
                requested_by: "admin".into(),
                requested_at_ms: 0,
                decided_by: None,
                decided_at_ms: None,
            }],
        }
    }

    #[test]
    fn a_consumer_is_found_by_key_principal_and_its_subscription_by_route()
    -> Result<(), &'static str> {
        let v = View::new(&sample());
        assert_eq!(v.version, 7);
        let (i, m) = v.by_key(&[0xab; 32]).ok_or("by key")?;
        assert_eq!(&*m.identity.consumer, "acme/shop");
        assert_eq!(&*m.identity.roles, &["buyers".into()] as &[Box<str>]);
        for p in ["acme/shop", "user-1", "shop-app"] {
            assert_eq!(v.by_principal(p).map(|f| f.0), Some(i), "{p}");
        }
        assert!(v.by_principal("shop").is_none() && v.by_key(&[0; 32]).is_none());
        let (a, api) = v.api_of("order").ok_or("route in an API")?;
        assert_eq!((&*api.tenant, &*api.name), ("acme", "orders"));
        assert!(v.api_of("other").is_none());
        assert_eq!(v.subscription(i, a), Some((State::Approved, 3)));
        assert_eq!(v.tenant_of(i), Some("acme"));
        let plan = v.plan(m).ok_or("plan")?;
        assert!(plan.allows("orders") && !plan.allows("order"));
        assert_eq!(plan.rate_per_minute, Some(60));
        Ok(())
    }

    #[test]
    fn the_installed_view_is_this_threads_own() {
        assert!(current().is_none());
        install(&sample());
        assert_eq!(current().map(|v| v.version), Some(7));
        let other = std::thread::spawn(|| current().is_none()).join();
        assert!(matches!(other, Ok(true)));
    }
}
