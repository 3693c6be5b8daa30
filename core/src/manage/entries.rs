//! The entry operations behind the management routes: tenants, APIs, plans and consumers
//! checked and written (names, digests, a route in one API only, a credential on one
//! consumer only, a plan in use kept). Subscriptions are in `subscriptions.rs`.

use policy::catalogue::{Api, Consumer, Plan, Tenant, Visibility};
use policy::catalogue::{parse_sha256, valid_name};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Manager;
use super::api::{Actor, Answer, Call, Refusal, body, refuse};
use super::store::{AuditEntry, Op};

/// `POST /tenants`, `PUT /tenants/{t}`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantIn {
    #[serde(default)]
    name: String,
    /// The routes its APIs may use.
    #[serde(default)]
    routes: Vec<String>,
    /// The tenant administrators' token (hashed here, never stored).
    #[serde(default)]
    admin_token: Option<String>,
    #[serde(default)]
    admin_token_sha256: Option<String>,
}

/// `POST /tenants/{t}/consumers`, `PUT …/{name}`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsumerIn {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    plan: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    /// API keys in plain text: hashed here, never stored.
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    keys_sha256: Vec<String>,
    #[serde(default)]
    jwt_subjects: Vec<String>,
    #[serde(default)]
    client_ids: Vec<String>,
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn audit(
    who: &Actor,
    tenant: Option<&str>,
    action: &str,
    target: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> AuditEntry {
    AuditEntry {
        id: 0,
        at_ms: 0,
        actor: who.name(),
        tenant: tenant.map(str::to_string),
        action: action.into(),
        target: target.into(),
        before: before.map(|v| v.to_string()),
        after: after.map(|v| v.to_string()),
    }
}

fn name_ok(name: &str, what: &str) -> Result<(), Refusal> {
    if valid_name(name) {
        return Ok(());
    }
    refuse(
        422,
        format!("{what} name `{name}`: use 1 to 64 letters, digits, `-`, `_` or `.`"),
    )
}

impl Manager {
    /// Writes a change and answers with `status` and the entry.
    pub(super) fn commit(
        &mut self,
        ops: &[Op],
        entry: AuditEntry,
        status: u16,
        key: &str,
        doc: Value,
    ) -> Answer {
        match self.change(ops, entry) {
            Ok((version, shards, of)) => Ok((
                status,
                json!({ key: doc, "version": version, "shards": shards, "of": of }),
            )),
            Err(why) => refuse(503, why),
        }
    }

    /// `POST /tenants` (make one) or `PUT /tenants/{t}` (replace its routes, and its token
    /// when one is given).
    pub(super) fn put_tenant(
        &mut self,
        who: &Actor,
        path_name: Option<&str>,
        call: &Call,
    ) -> Answer {
        let mut t: TenantIn = body(call)?;
        named(&mut t.name, path_name)?;
        name_ok(&t.name, "tenant")?;
        let c = &self.catalogue;
        let before = c.tenants.iter().find(|x| x.name == t.name).cloned();
        if path_name.is_none() && before.is_some() {
            return refuse(409, format!("tenant `{}` exists; PUT replaces it", t.name));
        }
        let digest = match (t.admin_token, t.admin_token_sha256, &before) {
            (Some(plain), None, _) if plain.len() >= 16 => hex(&Sha256::digest(plain.as_bytes())),
            (Some(_), None, _) => return refuse(422, "admin_token: at least 16 characters"),
            (None, Some(h), _) if parse_sha256(&h).is_some() => h.to_ascii_lowercase(),
            (None, Some(_), _) => return refuse(422, "admin_token_sha256 must be 64 hex digits"),
            (None, None, Some(b)) => b.admin_token_sha256.clone(),
            _ => return refuse(422, "give one of admin_token or admin_token_sha256"),
        };
        let others = || c.tenants.iter().filter(|x| x.name != t.name);
        if others().any(|x| x.admin_token_sha256 == digest) {
            return refuse(409, "choose another admin token");
        }
        if let Some(r) = t.routes.iter().find(|r| r.is_empty()) {
            return refuse(422, format!("routes: `{r}` is not a route name"));
        }
        if let Some((r, o)) = others().find_map(|o| {
            t.routes
                .iter()
                .find(|r| o.routes.contains(r))
                .map(|r| (r, o))
        }) {
            return refuse(409, format!("route `{r}` is tenant `{}`'s", o.name));
        }
        let in_use = c.apis.iter().filter(|a| a.tenant == t.name);
        if let Some((a, r)) = in_use
            .flat_map(|a| a.routes.iter().map(move |r| (a, r)))
            .find(|(_, r)| !t.routes.contains(r))
        {
            return refuse(
                409,
                format!("route `{r}` is in API `{}`; change the API first", a.name),
            );
        }
        let tenant = Tenant {
            name: t.name.clone(),
            admin_token_sha256: digest,
            routes: t.routes,
        };
        let doc = json!({ "name": tenant.name, "routes": tenant.routes });
        let (action, status) = if before.is_some() {
            ("tenant.replace", 200)
        } else {
            ("tenant.create", 201)
        };
        let was = before.map(|b| json!({ "name": b.name, "routes": b.routes }));
        let entry = audit(who, Some(&t.name), action, &t.name, was, Some(doc.clone()));
        self.commit(&[Op::PutTenant(tenant)], entry, status, "tenant", doc)
    }

    pub(super) fn delete_tenant(&mut self, who: &Actor, t: &str) -> Answer {
        let before = self.overview(t);
        // the admin's trail only: the entry holds the tenant's consumers
        let entry = audit(who, None, "tenant.delete", t, Some(before), None);
        self.commit(
            &[Op::DeleteTenant(t.into())],
            entry,
            200,
            "deleted",
            json!(t),
        )
    }

    /// `GET /tenants/{t}/{apis,plans,consumers}` (a consumer sees the public APIs only).
    pub(super) fn list(&self, who: &Actor, t: &str, kind: &str) -> Value {
        let c = &self.catalogue;
        let items: Vec<Value> = match kind {
            "apis" => c
                .apis
                .iter()
                .filter(|a| {
                    a.tenant == t && (who.administers(t) || a.visibility == Visibility::Public)
                })
                .map(|a| json!(a))
                .collect(),
            "plans" => c
                .plans
                .iter()
                .filter(|a| a.tenant == t)
                .map(|a| json!(a))
                .collect(),
            _ => c
                .consumers
                .iter()
                .filter(|a| a.tenant == t)
                .map(|a| json!(a))
                .collect(),
        };
        json!({ kind: items })
    }

    fn find(&self, t: &str, kind: &str, name: &str) -> Option<Value> {
        let c = &self.catalogue;
        let same = |tenant: &str, n: &str| tenant == t && n == name;
        match kind {
            "apis" => c
                .apis
                .iter()
                .find(|a| same(&a.tenant, &a.name))
                .map(|a| json!(a)),
            "plans" => c
                .plans
                .iter()
                .find(|a| same(&a.tenant, &a.name))
                .map(|a| json!(a)),
            _ => c
                .consumers
                .iter()
                .find(|a| same(&a.tenant, &a.name))
                .map(|a| json!(a)),
        }
    }

    pub(super) fn get_entry(&self, t: &str, kind: &str, name: &str) -> Answer {
        match self.find(t, kind, name) {
            Some(v) => Ok((200, v)),
            None => refuse(
                404,
                format!("no {} `{name}` in tenant `{t}`", singular(kind)),
            ),
        }
    }

    /// `POST` (create: 409 when it exists) or `PUT …/{name}` (create or replace).
    pub(super) fn put_entry(
        &mut self,
        who: &Actor,
        t: &str,
        kind: &str,
        path_name: Option<&str>,
        call: &Call,
    ) -> Answer {
        let (op, name) = match kind {
            "apis" => self.api_op(t, path_name, call)?,
            "plans" => self.plan_op(t, path_name, call)?,
            _ => self.consumer_op(t, path_name, call)?,
        };
        let before = self.find(t, kind, &name);
        if path_name.is_none() && before.is_some() {
            return refuse(
                409,
                format!(
                    "{} `{name}` exists in tenant `{t}`; PUT replaces it",
                    singular(kind)
                ),
            );
        }
        let after = match &op {
            Op::PutApi(a) => json!(a),
            Op::PutPlan(p) => json!(p),
            Op::PutConsumer(m) => json!(m),
            _ => Value::Null,
        };
        let action = format!(
            "{}.{}",
            singular(kind),
            if before.is_some() {
                "replace"
            } else {
                "create"
            }
        );
        let status = if before.is_some() { 200 } else { 201 };
        let entry = audit(who, Some(t), &action, &name, before, Some(after.clone()));
        self.commit(&[op], entry, status, singular(kind), after)
    }

    pub(super) fn delete_entry(&mut self, who: &Actor, t: &str, kind: &str, name: &str) -> Answer {
        let Some(before) = self.find(t, kind, name) else {
            return refuse(
                404,
                format!("no {} `{name}` in tenant `{t}`", singular(kind)),
            );
        };
        let c = &self.catalogue;
        let op = match kind {
            "apis" => Op::DeleteApi(t.into(), name.into()),
            "plans" => {
                if let Some(m) = c
                    .consumers
                    .iter()
                    .find(|m| m.tenant == t && m.plan.as_deref() == Some(name))
                {
                    return refuse(409, format!("plan `{name}` is consumer `{}`'s", m.name));
                }
                Op::DeletePlan(t.into(), name.into())
            }
            _ => Op::DeleteConsumer(t.into(), name.into()),
        };
        let entry = audit(
            who,
            Some(t),
            &format!("{}.delete", singular(kind)),
            name,
            Some(before),
            None,
        );
        self.commit(&[op], entry, 200, "deleted", json!(name))
    }

    fn api_op(
        &self,
        t: &str,
        path_name: Option<&str>,
        call: &Call,
    ) -> Result<(Op, String), Refusal> {
        let mut a: Api = body(call)?;
        named(&mut a.name, path_name)?;
        owned(&mut a.tenant, t)?;
        name_ok(&a.name, "API")?;
        if a.routes.is_empty() || a.routes.iter().any(String::is_empty) {
            return refuse(422, "routes: name one route or more");
        }
        let mine = self.catalogue.tenants.iter().find(|x| x.name == t);
        let assigned = mine.map(|x| x.routes.as_slice()).unwrap_or_default();
        if let Some(r) = a.routes.iter().find(|r| !assigned.contains(r)) {
            return refuse(
                403,
                format!(
                    "route `{r}` is not one of tenant `{t}`'s routes (the admin assigns them: PUT /tenants/{t})"
                ),
            );
        }
        for other in self
            .catalogue
            .apis
            .iter()
            .filter(|o| !(o.tenant == t && o.name == a.name))
        {
            if let Some(r) = a.routes.iter().find(|r| other.routes.contains(r)) {
                // the tenant's own routes only: the other API is its own
                return refuse(
                    409,
                    format!("route `{r}` is in API `{}` already", other.name),
                );
            }
        }
        let name = a.name.clone();
        Ok((Op::PutApi(a), name))
    }

    fn plan_op(
        &self,
        t: &str,
        path_name: Option<&str>,
        call: &Call,
    ) -> Result<(Op, String), Refusal> {
        let mut p: Plan = body(call)?;
        named(&mut p.name, path_name)?;
        owned(&mut p.tenant, t)?;
        name_ok(&p.name, "plan")?;
        let name = p.name.clone();
        Ok((Op::PutPlan(p), name))
    }

    fn consumer_op(
        &self,
        t: &str,
        path_name: Option<&str>,
        call: &Call,
    ) -> Result<(Op, String), Refusal> {
        let m: ConsumerIn = body(call)?;
        let mut name = m.name.unwrap_or_default();
        named(&mut name, path_name)?;
        name_ok(&name, "consumer")?;
        if let Some(p) = &m.plan
            && !self
                .catalogue
                .plans
                .iter()
                .any(|x| x.tenant == t && x.name == *p)
        {
            return refuse(422, format!("plan `{p}`: tenant `{t}` has no such plan"));
        }
        let mut keys = Vec::new();
        for k in &m.keys_sha256 {
            match parse_sha256(k) {
                Some(_) => keys.push(k.to_ascii_lowercase()),
                None => return refuse(422, "keys_sha256: each is 64 hex digits"),
            }
        }
        for k in m.keys.iter() {
            if k.len() < 16 {
                return refuse(422, "keys: each at least 16 characters");
            }
            keys.push(hex(&Sha256::digest(k.as_bytes())));
        }
        let new = Consumer {
            tenant: t.into(),
            name,
            plan: m.plan,
            groups: m.groups,
            keys_sha256: keys,
            jwt_subjects: m.jwt_subjects,
            client_ids: m.client_ids,
        };
        self.unique_credentials(&new)?;
        let name = new.name.clone();
        Ok((Op::PutConsumer(new), name))
    }

    /// No other consumer has one of `new`'s keys or principals.
    fn unique_credentials(&self, new: &Consumer) -> Result<(), Refusal> {
        let me = new.identity();
        let principals = |m: &Consumer| {
            let id = m.identity();
            m.jwt_subjects
                .iter()
                .chain(&m.client_ids)
                .cloned()
                .chain([id])
                .collect::<Vec<_>>()
        };
        let mine = principals(new);
        for other in self
            .catalogue
            .consumers
            .iter()
            .filter(|o| o.identity() != me)
        {
            if new
                .keys_sha256
                .iter()
                .any(|k| other.keys_sha256.contains(k))
            {
                // said without naming whose: another tenant's consumers are not for telling
                return refuse(409, "one of the keys cannot be used; choose another");
            }
            if let Some(p) = principals(other).iter().find(|p| mine.contains(p)) {
                return refuse(409, format!("`{p}` names another consumer already"));
            }
        }
        Ok(())
    }
}

fn singular(kind: &str) -> &'static str {
    match kind {
        "apis" => "api",
        "plans" => "plan",
        _ => "consumer",
    }
}

/// The entry's name: the path's (a body naming another is refused), else the body's.
fn named(name: &mut String, path_name: Option<&str>) -> Result<(), Refusal> {
    match path_name {
        Some(p) if name.is_empty() || name == p => {
            *name = p.into();
            Ok(())
        }
        Some(p) => refuse(422, format!("the body names `{name}`, the path `{p}`")),
        None => Ok(()),
    }
}

/// The entry's tenant: the path's (a body naming another is refused).
fn owned(tenant: &mut String, t: &str) -> Result<(), Refusal> {
    if tenant.is_empty() || tenant == t {
        *tenant = t.into();
        return Ok(());
    }
    refuse(
        422,
        format!("the body names tenant `{tenant}`, the path `{t}`"),
    )
}
