//! The catalogue's store: what a backend does (load everything, commit one change with its
//! audit entry in one transaction, read the audit trail), the changes themselves (`Op`), and
//! the schema migrations every backend applies in order.

use policy::catalogue::{Api, Catalogue, Consumer, Plan, Subscription, Tenant};
use serde::Serialize;

use super::analytics::{Period, Stored};

/// The schema, one migration per version (1-based), as committed in `migrations/`.
pub const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_catalogue.sql"),
    include_str!("migrations/0002_calls.sql"),
    include_str!("migrations/0003_tenant_routes.sql"),
    include_str!("migrations/0004_plan_quota.sql"),
];

/// One change to the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Add or replace a tenant.
    PutTenant(Tenant),
    /// Remove a tenant and everything of it.
    DeleteTenant(String),
    /// Add or replace an API.
    PutApi(Api),
    /// Remove a tenant's API (tenant, name) and its subscriptions.
    DeleteApi(String, String),
    /// Add or replace a plan.
    PutPlan(Plan),
    /// Remove a tenant's plan (tenant, name).
    DeletePlan(String, String),
    /// Add or replace a consumer.
    PutConsumer(Consumer),
    /// Remove a tenant's consumer (tenant, name) and its subscriptions.
    DeleteConsumer(String, String),
    /// Add or replace a subscription (by id).
    PutSubscription(Subscription),
}

/// One recorded change: who did what, when, and the entry before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Its number (the catalogue's version after the change).
    pub id: u64,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Who (`admin`, `tenant:NAME`, `consumer:TENANT/NAME`).
    pub actor: String,
    /// The tenant it concerns (none for changes above tenants).
    pub tenant: Option<String>,
    /// What (`api.put`, `subscription.approve`, …).
    pub action: String,
    /// Which entry (`orders`, `subscription 4`).
    pub target: String,
    /// The entry before (JSON), when there was one.
    pub before: Option<String>,
    /// The entry after (JSON), when there is one.
    pub after: Option<String>,
}

/// Why the store failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A backend that keeps the catalogue.
pub trait Store: Send {
    /// The catalogue's version in it: the last audit entry's number (another node sharing
    /// the store may have moved it on).
    fn version(&mut self) -> Result<u64, StoreError>;
    /// Everything in it (the version is the last audit entry's number).
    fn load(&mut self) -> Result<Catalogue, StoreError>;
    /// Writes `ops` and `audit` in one transaction: all of them, or none.
    fn commit(&mut self, ops: &[Op], audit: &AuditEntry) -> Result<(), StoreError>;
    /// The newest `limit` audit entries, of `tenant` when given, newest first.
    fn audit(&mut self, tenant: Option<&str>, limit: u64) -> Result<Vec<AuditEntry>, StoreError>;
    /// Adds `rows` into the call figures (a row with the same key gets the sums added), in
    /// one transaction.
    fn add_calls(&mut self, rows: &[Stored]) -> Result<(), StoreError>;
    /// The call rows starting in `from_ms..to_ms`, of `tenant` and `period` when given.
    fn calls(
        &mut self,
        tenant: Option<&str>,
        from_ms: u64,
        to_ms: u64,
        period: Option<Period>,
    ) -> Result<Vec<Stored>, StoreError>;
    /// In one transaction, serialized with the store's other users: adds the rows of
    /// `period` starting before `before_ms` into rows of `into` (none: forgets them), then
    /// removes them.
    fn roll_calls(
        &mut self,
        period: Period,
        into: Option<Period>,
        before_ms: u64,
    ) -> Result<(), StoreError>;
}

/// Applies `op` to the in-memory catalogue, as `Store::commit` does to the store.
pub fn apply(c: &mut Catalogue, op: &Op) {
    fn put<T>(list: &mut Vec<T>, item: T, same: impl Fn(&T) -> bool) {
        match list.iter_mut().find(|x| same(x)) {
            Some(x) => *x = item,
            None => list.push(item),
        }
    }
    match op {
        Op::PutTenant(t) => put(&mut c.tenants, t.clone(), |x| x.name == t.name),
        Op::DeleteTenant(t) => {
            c.tenants.retain(|x| x.name != *t);
            c.apis.retain(|x| x.tenant != *t);
            c.plans.retain(|x| x.tenant != *t);
            c.consumers.retain(|x| x.tenant != *t);
            c.subscriptions.retain(|x| x.tenant != *t);
        }
        Op::PutApi(a) => put(&mut c.apis, a.clone(), |x| {
            x.tenant == a.tenant && x.name == a.name
        }),
        Op::DeleteApi(t, n) => {
            c.apis.retain(|x| !(x.tenant == *t && x.name == *n));
            c.subscriptions.retain(|x| !(x.tenant == *t && x.api == *n));
        }
        Op::PutPlan(p) => put(&mut c.plans, p.clone(), |x| {
            x.tenant == p.tenant && x.name == p.name
        }),
        Op::DeletePlan(t, n) => c.plans.retain(|x| !(x.tenant == *t && x.name == *n)),
        Op::PutConsumer(m) => put(&mut c.consumers, m.clone(), |x| {
            x.tenant == m.tenant && x.name == m.name
        }),
        Op::DeleteConsumer(t, n) => {
            c.consumers.retain(|x| !(x.tenant == *t && x.name == *n));
            c.subscriptions
                .retain(|x| !(x.tenant == *t && x.consumer == *n));
        }
        Op::PutSubscription(s) => put(&mut c.subscriptions, s.clone(), |x| x.id == s.id),
    }
}
