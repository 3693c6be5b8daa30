//! The store in SQL, for any backend that can run a statement with `$n` parameters (`Db`):
//! the schema migrations, the statements each change is, and catalogue, audit and call
//! rows to and from plain values. SQLite and PostgreSQL run the same text.

use policy::catalogue::{Api, Catalogue, Consumer, Plan, State, Subscription, Tenant, Visibility};

use super::analytics::{Period, Stored};
use super::store::{AuditEntry, MIGRATIONS, Op, Store, StoreError};
use crate::calls::{BUCKETS, Sums};

/// A parameter or a column's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V {
    /// A BIGINT.
    Int(i64),
    /// A TEXT.
    Text(String),
    /// A null BIGINT.
    NullInt,
    /// A null TEXT (or a null read back, whatever its type).
    NullText,
}

/// One statement and its parameters.
pub type Stmt = (String, Vec<V>);

/// What a backend does.
pub trait Db: Send {
    /// Runs `stmts` in one transaction: all of them, or none.
    fn transact(&mut self, stmts: &[Stmt]) -> Result<(), StoreError>;
    /// The rows one query gives.
    fn query(&mut self, sql: &str, params: &[V]) -> Result<Vec<Vec<V>>, StoreError>;
    /// Queries that take and give back a lock held across transactions, when other
    /// processes may use the store at once (the schema migrations take it).
    fn session_lock(&self) -> Option<(&'static str, &'static str)> {
        None
    }
}

/// A store kept in `D`.
pub struct SqlStore<D> {
    db: D,
}

fn int(v: u64) -> V {
    V::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

fn text(s: &str) -> V {
    V::Text(s.to_string())
}

fn opt_text(s: Option<&str>) -> V {
    s.map_or(V::NullText, text)
}

fn list(v: &[String]) -> V {
    V::Text(serde_json::to_string(v).unwrap_or_else(|_| "[]".into()))
}

/// Reads columns of one row by position (a missing or mistyped one reads as empty).
struct Cols<'r>(&'r [V]);

impl Cols<'_> {
    fn u(&self, i: usize) -> u64 {
        match self.0.get(i) {
            Some(V::Int(n)) => u64::try_from(*n).unwrap_or(0),
            _ => 0,
        }
    }
    fn opt_u(&self, i: usize) -> Option<u64> {
        match self.0.get(i) {
            Some(V::Int(n)) => u64::try_from(*n).ok(),
            _ => None,
        }
    }
    fn s(&self, i: usize) -> String {
        self.opt_s(i).unwrap_or_default()
    }
    fn opt_s(&self, i: usize) -> Option<String> {
        match self.0.get(i) {
            Some(V::Text(s)) => Some(s.clone()),
            _ => None,
        }
    }
    fn list(&self, i: usize) -> Vec<String> {
        serde_json::from_str(&self.s(i)).unwrap_or_default()
    }
}

/// The statements of a migration file (`--` comment lines dropped, split at `;`).
fn statements(sql: &str) -> Vec<Stmt> {
    let code: Vec<&str> = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect();
    let code = code.join("\n");
    code.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| (s.to_string(), Vec::new()))
        .collect()
}

impl<D: Db> SqlStore<D> {
    /// The store in `db`, its schema brought up to date first.
    pub fn open(mut db: D) -> Result<SqlStore<D>, StoreError> {
        // nodes starting at once on one server migrate one after the other
        let lock = db.session_lock();
        if let Some((take, _)) = lock {
            db.query(take, &[])?;
        }
        let migrated = Self::migrate(&mut db);
        if let Some((_, give)) = lock {
            db.query(give, &[])?;
        }
        migrated?;
        Ok(SqlStore { db })
    }

    fn migrate(db: &mut D) -> Result<(), StoreError> {
        let make = "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)";
        db.transact(&[(make.into(), Vec::new())])?;
        let have = db.query(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )?;
        let have = have.first().map_or(0, |r| Cols(r).u(0));
        let have = usize::try_from(have).unwrap_or(usize::MAX);
        if have > MIGRATIONS.len() {
            return Err(StoreError(format!(
                "the database has schema version {have}, this shardgate knows {} (made by a newer one)",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(have) {
            let mut stmts = statements(sql);
            let record = "INSERT INTO schema_migrations (version, applied_at_ms) VALUES ($1, $2)";
            stmts.push((record.into(), vec![int(i as u64 + 1), int(super::now_ms())]));
            db.transact(&stmts)
                .map_err(|e| StoreError(format!("migration {}: {e}", i + 1)))?;
        }
        Ok(())
    }

    /// The backend (tests).
    #[cfg(test)]
    pub fn db(&mut self) -> &mut D {
        &mut self.db
    }
}

/// Deletes rows of `table` matching `(column, value)` pairs.
fn delete(table: &str, by: &[(&str, &str)]) -> Stmt {
    let cond: Vec<String> = by
        .iter()
        .enumerate()
        .map(|(i, (c, _))| format!("{c} = ${}", i + 1))
        .collect();
    let sql = format!("DELETE FROM {table} WHERE {}", cond.join(" AND "));
    (sql, by.iter().map(|(_, v)| text(v)).collect())
}

/// Inserts `values` into `table`'s `columns`.
fn insert(table: &str, columns: &str, values: Vec<V>) -> Stmt {
    let marks: Vec<String> = (1..=values.len()).map(|i| format!("${i}")).collect();
    (
        format!(
            "INSERT INTO {table} ({columns}) VALUES ({})",
            marks.join(", ")
        ),
        values,
    )
}

/// The statements that make `op`.
fn write(op: &Op) -> Vec<Stmt> {
    match op {
        Op::PutTenant(t) => vec![
            delete("tenants", &[("name", &t.name)]),
            insert(
                "tenants",
                "name, admin_token_sha256, routes",
                vec![text(&t.name), text(&t.admin_token_sha256), list(&t.routes)],
            ),
        ],
        Op::DeleteTenant(t) => {
            let mut s = vec![delete("tenants", &[("name", t)])];
            for table in ["apis", "plans", "consumers", "subscriptions", "calls"] {
                s.push(delete(table, &[("tenant", t)]));
            }
            // its audit trail stays the admin's only: a new tenant of the name reads none of it
            let orphan = "UPDATE audit SET tenant = NULL WHERE tenant = $1".to_string();
            s.push((orphan, vec![text(t)]));
            s
        }
        Op::PutApi(a) => {
            let vis = if a.visibility == Visibility::Private {
                "private"
            } else {
                "public"
            };
            let key = [("tenant", a.tenant.as_str()), ("name", a.name.as_str())];
            let values = vec![text(&a.tenant), text(&a.name), list(&a.routes), text(vis)];
            vec![
                delete("apis", &key),
                insert("apis", "tenant, name, routes, visibility", values),
            ]
        }
        Op::DeleteApi(t, n) => vec![
            delete("apis", &[("tenant", t), ("name", n)]),
            delete("subscriptions", &[("tenant", t), ("api", n)]),
        ],
        Op::PutPlan(p) => {
            let key = [("tenant", p.tenant.as_str()), ("name", p.name.as_str())];
            let rate = p.rate_per_minute.map_or(V::NullInt, int);
            let quota = p.quota_per_day.map_or(V::NullInt, int);
            let values = vec![text(&p.tenant), text(&p.name), rate, list(&p.routes), quota];
            let cols = "tenant, name, rate_per_minute, routes, quota_per_day";
            vec![delete("plans", &key), insert("plans", cols, values)]
        }
        Op::DeletePlan(t, n) => vec![delete("plans", &[("tenant", t), ("name", n)])],
        Op::PutConsumer(m) => {
            let key = [("tenant", m.tenant.as_str()), ("name", m.name.as_str())];
            let values = vec![
                text(&m.tenant),
                text(&m.name),
                opt_text(m.plan.as_deref()),
                list(&m.groups),
                list(&m.keys_sha256),
                list(&m.jwt_subjects),
                list(&m.client_ids),
            ];
            let cols = "tenant, name, plan, groups_, keys_sha256, jwt_subjects, client_ids";
            vec![delete("consumers", &key), insert("consumers", cols, values)]
        }
        Op::DeleteConsumer(t, n) => vec![
            delete("consumers", &[("tenant", t), ("name", n)]),
            delete("subscriptions", &[("tenant", t), ("consumer", n)]),
        ],
        Op::PutSubscription(s) => {
            let values = vec![
                int(s.id),
                text(&s.tenant),
                text(&s.consumer),
                text(&s.api),
                text(s.state.name()),
                text(&s.requested_by),
                int(s.requested_at_ms),
                opt_text(s.decided_by.as_deref()),
                s.decided_at_ms.map_or(V::NullInt, int),
            ];
            let cols = "id, tenant, consumer, api, state, requested_by, requested_at_ms, decided_by, decided_at_ms";
            let del = (
                "DELETE FROM subscriptions WHERE id = $1".to_string(),
                vec![int(s.id)],
            );
            vec![del, insert("subscriptions", cols, values)]
        }
    }
}

/// The call columns after the key, in order.
fn call_columns() -> Vec<String> {
    let mut c: Vec<String> = ["count", "errors", "bytes_in", "bytes_out"]
        .map(String::from)
        .into();
    c.extend((0..BUCKETS).map(|i| format!("l{i}")));
    c
}

const CALL_KEY: &str = "period, start_ms, tenant, api, route, consumer, class";

/// The statement adding one row into `calls` (the sums of a row with its key added to).
fn add_call(r: &Stored) -> Stmt {
    let cols = call_columns();
    let sets: Vec<String> = cols
        .iter()
        .map(|c| format!("{c} = calls.{c} + excluded.{c}"))
        .collect();
    let s = &r.sums;
    let mut v = vec![
        text(r.period.name()),
        int(r.start_ms),
        text(&r.tenant),
        text(&r.api),
        text(&r.route),
        text(&r.consumer),
        int(u64::from(r.class)),
    ];
    v.extend([s.count, s.errors, s.bytes_in, s.bytes_out].map(int));
    v.extend(s.latency.iter().map(|&n| int(n)));
    let (sql, v) = insert("calls", &format!("{CALL_KEY}, {}", cols.join(", ")), v);
    (
        format!(
            "{sql} ON CONFLICT ({CALL_KEY}) DO UPDATE SET {}",
            sets.join(", ")
        ),
        v,
    )
}

fn call_row(r: &[V]) -> Stored {
    let c = Cols(r);
    let mut latency = [0u64; BUCKETS];
    for (i, l) in latency.iter_mut().enumerate() {
        *l = c.u(11 + i);
    }
    Stored {
        period: Period::parse(&c.s(0)).unwrap_or(Period::Day),
        start_ms: c.u(1),
        tenant: c.s(2),
        api: c.s(3),
        route: c.s(4),
        consumer: c.s(5),
        class: u8::try_from(c.u(6)).unwrap_or(0),
        sums: Sums {
            count: c.u(7),
            errors: c.u(8),
            bytes_in: c.u(9),
            bytes_out: c.u(10),
            latency,
        },
    }
}

impl<D: Db> SqlStore<D> {
    fn rows<T>(&mut self, sql: &str, f: impl Fn(Cols<'_>) -> T) -> Result<Vec<T>, StoreError> {
        Ok(self
            .db
            .query(sql, &[])?
            .iter()
            .map(|r| f(Cols(r)))
            .collect())
    }
}

impl<D: Db> Store for SqlStore<D> {
    fn version(&mut self) -> Result<u64, StoreError> {
        let v = self
            .db
            .query("SELECT COALESCE(MAX(id), 0) FROM audit", &[])?;
        Ok(v.first().map_or(0, |r| Cols(r).u(0)))
    }

    fn load(&mut self) -> Result<Catalogue, StoreError> {
        Ok(Catalogue {
            version: self.version()?,
            tenants: self.rows(
                "SELECT name, admin_token_sha256, routes FROM tenants ORDER BY name",
                |c| Tenant {
                    name: c.s(0),
                    admin_token_sha256: c.s(1),
                    routes: c.list(2),
                },
            )?,
            apis: self.rows("SELECT tenant, name, routes, visibility FROM apis ORDER BY tenant, name", |c| Api {
                tenant: c.s(0),
                name: c.s(1),
                routes: c.list(2),
                visibility: if c.s(3) == "private" { Visibility::Private } else { Visibility::Public },
            })?,
            plans: self.rows(
                "SELECT tenant, name, rate_per_minute, routes, quota_per_day FROM plans ORDER BY tenant, name",
                |c| Plan {
                    tenant: c.s(0),
                    name: c.s(1),
                    rate_per_minute: c.opt_u(2),
                    routes: c.list(3),
                    quota_per_day: c.opt_u(4),
                },
            )?,
            consumers: self.rows(
                "SELECT tenant, name, plan, groups_, keys_sha256, jwt_subjects, client_ids FROM consumers ORDER BY tenant, name",
                |c| Consumer {
                    tenant: c.s(0),
                    name: c.s(1),
                    plan: c.opt_s(2),
                    groups: c.list(3),
                    keys_sha256: c.list(4),
                    jwt_subjects: c.list(5),
                    client_ids: c.list(6),
                },
            )?,
            subscriptions: self.rows(
                "SELECT id, tenant, consumer, api, state, requested_by, requested_at_ms, decided_by, decided_at_ms FROM subscriptions ORDER BY id",
                |c| Subscription {
                    id: c.u(0),
                    tenant: c.s(1),
                    consumer: c.s(2),
                    api: c.s(3),
                    state: State::parse(&c.s(4)).unwrap_or(State::Revoked),
                    requested_by: c.s(5),
                    requested_at_ms: c.u(6),
                    decided_by: c.opt_s(7),
                    decided_at_ms: c.opt_u(8),
                },
            )?,
        })
    }

    fn commit(&mut self, ops: &[Op], a: &AuditEntry) -> Result<(), StoreError> {
        let mut stmts: Vec<Stmt> = ops.iter().flat_map(write).collect();
        let values = vec![
            int(a.id),
            int(a.at_ms),
            text(&a.actor),
            opt_text(a.tenant.as_deref()),
            text(&a.action),
            text(&a.target),
            opt_text(a.before.as_deref()),
            opt_text(a.after.as_deref()),
        ];
        stmts.push(insert(
            "audit",
            "id, at_ms, actor, tenant, action, target, before_, after_",
            values,
        ));
        self.db.transact(&stmts)
    }

    fn audit(&mut self, tenant: Option<&str>, limit: u64) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = "SELECT id, at_ms, actor, tenant, action, target, before_, after_ FROM audit WHERE (CAST($1 AS TEXT) IS NULL OR tenant = $1) ORDER BY id DESC LIMIT $2";
        let rows = self.db.query(sql, &[opt_text(tenant), int(limit)])?;
        Ok(rows
            .iter()
            .map(|r| {
                let c = Cols(r);
                AuditEntry {
                    id: c.u(0),
                    at_ms: c.u(1),
                    actor: c.s(2),
                    tenant: c.opt_s(3),
                    action: c.s(4),
                    target: c.s(5),
                    before: c.opt_s(6),
                    after: c.opt_s(7),
                }
            })
            .collect())
    }

    fn add_calls(&mut self, rows: &[Stored]) -> Result<(), StoreError> {
        let stmts: Vec<Stmt> = rows.iter().map(add_call).collect();
        self.db.transact(&stmts)
    }

    fn calls(
        &mut self,
        tenant: Option<&str>,
        from_ms: u64,
        to_ms: u64,
        period: Option<Period>,
    ) -> Result<Vec<Stored>, StoreError> {
        let sql = format!(
            "SELECT {CALL_KEY}, {} FROM calls WHERE start_ms >= $1 AND start_ms < $2 AND (CAST($3 AS TEXT) IS NULL OR tenant = $3) AND (CAST($4 AS TEXT) IS NULL OR period = $4)",
            call_columns().join(", ")
        );
        let params = [
            int(from_ms),
            int(to_ms),
            opt_text(tenant),
            opt_text(period.map(Period::name)),
        ];
        Ok(self
            .db
            .query(&sql, &params)?
            .iter()
            .map(|r| call_row(r))
            .collect())
    }

    fn roll_calls(
        &mut self,
        period: Period,
        into: Option<Period>,
        before_ms: u64,
    ) -> Result<(), StoreError> {
        let del = "DELETE FROM calls WHERE period = $1 AND start_ms < $2".to_string();
        let mut stmts = Vec::new();
        if let Some(into) = into {
            let cols = call_columns();
            let sums: Vec<String> = cols.iter().map(|c| format!("SUM({c})")).collect();
            let sets: Vec<String> = cols
                .iter()
                .map(|c| format!("{c} = calls.{c} + excluded.{c}"))
                .collect();
            // (the WHERE clause also keeps SQLite from reading ON CONFLICT as a join)
            let sql = format!(
                "INSERT INTO calls ({CALL_KEY}, {}) SELECT CAST($1 AS TEXT), start_ms - (start_ms % CAST($2 AS BIGINT)), tenant, api, route, consumer, class, {} FROM calls WHERE period = $3 AND start_ms < $4 GROUP BY 2, 3, 4, 5, 6, 7 ON CONFLICT ({CALL_KEY}) DO UPDATE SET {}",
                cols.join(", "),
                sums.join(", "),
                sets.join(", ")
            );
            let params = vec![
                text(into.name()),
                int(into.ms()),
                text(period.name()),
                int(before_ms),
            ];
            stmts.push((sql, params));
        }
        stmts.push((del, vec![text(period.name()), int(before_ms)]));
        self.db.transact(&stmts)
    }
}
