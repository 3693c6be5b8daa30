//! The embedded store: one SQLite file (WAL journal), opened by the management thread only,
//! its schema migrated at open. Statements use `$n` parameters, as PostgreSQL's do.

use std::path::Path;

use policy::catalogue::{Api, Catalogue, Consumer, Plan, State, Subscription, Tenant, Visibility};
use rusqlite::{Connection, Row, params};

use super::analytics::{Period, Stored};
use super::sqlite_calls::{add_calls, call_row, calls_sql};
use super::store::{AuditEntry, MIGRATIONS, Op, Store, StoreError};

/// How long a write waits for a database another connection has locked.
const BUSY: std::time::Duration = std::time::Duration::from_millis(250);

/// The SQLite store.
pub struct Sqlite {
    db: Connection,
}

fn fail(what: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError(format!("{what}: {e}"))
}

fn list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn unlist(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

pub(super) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Sqlite {
    /// Opens (or makes) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Sqlite, StoreError> {
        let opened = Connection::open(path);
        let db = opened.map_err(|e| StoreError(format!("cannot open {}: {e}", path.display())))?;
        db.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
            .map_err(fail("cannot set the journal mode"))?;
        // a database another process holds fails a write within this, instead of holding the
        // management thread (call figures then wait for the next flush)
        db.busy_timeout(BUSY)
            .map_err(fail("cannot set the busy timeout"))?;
        let mut s = Sqlite { db };
        s.migrate()?;
        Ok(s)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        self.db
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)",
            )
            .map_err(fail("cannot make the migrations table"))?;
        let have: i64 = self
            .db
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )
            .map_err(fail("cannot read the schema version"))?;
        let have = usize::try_from(have).unwrap_or(usize::MAX);
        if have > MIGRATIONS.len() {
            return Err(StoreError(format!(
                "the database has schema version {have}, this shardgate knows {} (made by a newer one)",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(have) {
            let tx = self
                .db
                .transaction()
                .map_err(fail("cannot begin a migration"))?;
            tx.execute_batch(sql)
                .map_err(|e| StoreError(format!("migration {}: {e}", i + 1)))?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at_ms) VALUES ($1, $2)",
                params![int(i as u64 + 1), int(super::now_ms())],
            )
            .map_err(fail("cannot record a migration"))?;
            tx.commit().map_err(fail("cannot commit a migration"))?;
        }
        Ok(())
    }

    fn rows<T>(
        &self,
        sql: &str,
        f: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        let mut st = self
            .db
            .prepare(sql)
            .map_err(fail("cannot read the catalogue"))?;
        let rows = st
            .query_map([], |r| f(r))
            .map_err(fail("cannot read the catalogue"))?;
        rows.collect::<Result<Vec<T>, _>>()
            .map_err(fail("cannot read the catalogue"))
    }
}

fn subscription(r: &Row<'_>) -> rusqlite::Result<Subscription> {
    let state: String = r.get(4)?;
    Ok(Subscription {
        id: uint(r.get(0)?),
        tenant: r.get(1)?,
        consumer: r.get(2)?,
        api: r.get(3)?,
        state: State::parse(&state).unwrap_or(State::Revoked),
        requested_by: r.get(5)?,
        requested_at_ms: uint(r.get(6)?),
        decided_by: r.get(7)?,
        decided_at_ms: r.get::<_, Option<i64>>(8)?.map(uint),
    })
}

fn write(tx: &rusqlite::Transaction<'_>, op: &Op) -> rusqlite::Result<()> {
    match op {
        Op::PutTenant(t) => {
            tx.execute("DELETE FROM tenants WHERE name = $1", params![t.name])?;
            tx.execute(
                "INSERT INTO tenants (name, admin_token_sha256) VALUES ($1, $2)",
                params![t.name, t.admin_token_sha256],
            )?;
        }
        Op::DeleteTenant(t) => {
            for table in [
                "tenants WHERE name",
                "apis WHERE tenant",
                "plans WHERE tenant",
                "consumers WHERE tenant",
                "subscriptions WHERE tenant",
            ] {
                tx.execute(&format!("DELETE FROM {table} = $1"), params![t])?;
            }
        }
        Op::PutApi(a) => {
            let vis = if a.visibility == Visibility::Private {
                "private"
            } else {
                "public"
            };
            tx.execute(
                "DELETE FROM apis WHERE tenant = $1 AND name = $2",
                params![a.tenant, a.name],
            )?;
            tx.execute(
                "INSERT INTO apis (tenant, name, routes, visibility) VALUES ($1, $2, $3, $4)",
                params![a.tenant, a.name, list(&a.routes), vis],
            )?;
        }
        Op::DeleteApi(t, n) => {
            tx.execute(
                "DELETE FROM apis WHERE tenant = $1 AND name = $2",
                params![t, n],
            )?;
            tx.execute(
                "DELETE FROM subscriptions WHERE tenant = $1 AND api = $2",
                params![t, n],
            )?;
        }
        Op::PutPlan(p) => {
            tx.execute(
                "DELETE FROM plans WHERE tenant = $1 AND name = $2",
                params![p.tenant, p.name],
            )?;
            tx.execute(
                "INSERT INTO plans (tenant, name, rate_per_minute, routes) VALUES ($1, $2, $3, $4)",
                params![
                    p.tenant,
                    p.name,
                    p.rate_per_minute.map(int),
                    list(&p.routes)
                ],
            )?;
        }
        Op::DeletePlan(t, n) => {
            tx.execute(
                "DELETE FROM plans WHERE tenant = $1 AND name = $2",
                params![t, n],
            )?;
        }
        Op::PutConsumer(m) => {
            tx.execute(
                "DELETE FROM consumers WHERE tenant = $1 AND name = $2",
                params![m.tenant, m.name],
            )?;
            tx.execute(
                "INSERT INTO consumers (tenant, name, plan, groups_, keys_sha256, jwt_subjects, client_ids) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                params![m.tenant, m.name, m.plan, list(&m.groups), list(&m.keys_sha256), list(&m.jwt_subjects), list(&m.client_ids)],
            )?;
        }
        Op::DeleteConsumer(t, n) => {
            tx.execute(
                "DELETE FROM consumers WHERE tenant = $1 AND name = $2",
                params![t, n],
            )?;
            tx.execute(
                "DELETE FROM subscriptions WHERE tenant = $1 AND consumer = $2",
                params![t, n],
            )?;
        }
        Op::PutSubscription(s) => {
            tx.execute(
                "DELETE FROM subscriptions WHERE id = $1",
                params![int(s.id)],
            )?;
            tx.execute(
                "INSERT INTO subscriptions (id, tenant, consumer, api, state, requested_by, requested_at_ms, decided_by, decided_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                params![int(s.id), s.tenant, s.consumer, s.api, s.state.name(), s.requested_by, int(s.requested_at_ms), s.decided_by, s.decided_at_ms.map(int)],
            )?;
        }
    }
    Ok(())
}

impl Store for Sqlite {
    fn load(&mut self) -> Result<Catalogue, StoreError> {
        let version: i64 = self
            .db
            .query_row("SELECT COALESCE(MAX(id), 0) FROM audit", [], |r| r.get(0))
            .map_err(fail("cannot read the audit trail"))?;
        Ok(Catalogue {
            version: uint(version),
            tenants: self.rows("SELECT name, admin_token_sha256 FROM tenants ORDER BY name", |r| {
                Ok(Tenant { name: r.get(0)?, admin_token_sha256: r.get(1)? })
            })?,
            apis: self.rows("SELECT tenant, name, routes, visibility FROM apis ORDER BY tenant, name", |r| {
                let vis: String = r.get(3)?;
                Ok(Api {
                    tenant: r.get(0)?,
                    name: r.get(1)?,
                    routes: unlist(&r.get::<_, String>(2)?),
                    visibility: if vis == "private" { Visibility::Private } else { Visibility::Public },
                })
            })?,
            plans: self.rows("SELECT tenant, name, rate_per_minute, routes FROM plans ORDER BY tenant, name", |r| {
                Ok(Plan {
                    tenant: r.get(0)?,
                    name: r.get(1)?,
                    rate_per_minute: r.get::<_, Option<i64>>(2)?.map(uint),
                    routes: unlist(&r.get::<_, String>(3)?),
                })
            })?,
            consumers: self.rows(
                "SELECT tenant, name, plan, groups_, keys_sha256, jwt_subjects, client_ids FROM consumers ORDER BY tenant, name",
                |r| {
                    Ok(Consumer {
                        tenant: r.get(0)?,
                        name: r.get(1)?,
                        plan: r.get(2)?,
                        groups: unlist(&r.get::<_, String>(3)?),
                        keys_sha256: unlist(&r.get::<_, String>(4)?),
                        jwt_subjects: unlist(&r.get::<_, String>(5)?),
                        client_ids: unlist(&r.get::<_, String>(6)?),
                    })
                },
            )?,
            subscriptions: self.rows(
                "SELECT id, tenant, consumer, api, state, requested_by, requested_at_ms, decided_by, decided_at_ms FROM subscriptions ORDER BY id",
                subscription,
            )?,
        })
    }

    fn commit(&mut self, ops: &[Op], a: &AuditEntry) -> Result<(), StoreError> {
        let tx = self.db.transaction().map_err(fail("cannot begin"))?;
        for op in ops {
            write(&tx, op).map_err(fail("cannot write the change"))?;
        }
        tx.execute(
            "INSERT INTO audit (id, at_ms, actor, tenant, action, target, before_, after_) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            params![int(a.id), int(a.at_ms), a.actor, a.tenant, a.action, a.target, a.before, a.after],
        )
        .map_err(fail("cannot write the audit entry"))?;
        tx.commit().map_err(fail("cannot commit"))
    }

    fn audit(&mut self, tenant: Option<&str>, limit: u64) -> Result<Vec<AuditEntry>, StoreError> {
        let mut st = self
            .db
            .prepare(
                "SELECT id, at_ms, actor, tenant, action, target, before_, after_ FROM audit WHERE ($1 IS NULL OR tenant = $1) ORDER BY id DESC LIMIT $2",
            )
            .map_err(fail("cannot read the audit trail"))?;
        let rows = st
            .query_map(params![tenant, int(limit)], |r| {
                Ok(AuditEntry {
                    id: uint(r.get(0)?),
                    at_ms: uint(r.get(1)?),
                    actor: r.get(2)?,
                    tenant: r.get(3)?,
                    action: r.get(4)?,
                    target: r.get(5)?,
                    before: r.get(6)?,
                    after: r.get(7)?,
                })
            })
            .map_err(fail("cannot read the audit trail"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(fail("cannot read the audit trail"))
    }

    fn add_calls(&mut self, rows: &[Stored]) -> Result<(), StoreError> {
        let tx = self.db.transaction().map_err(fail("cannot begin"))?;
        add_calls(&tx, rows).map_err(fail("cannot write call figures"))?;
        tx.commit().map_err(fail("cannot commit call figures"))
    }

    fn calls(
        &mut self,
        tenant: Option<&str>,
        from_ms: u64,
        to_ms: u64,
        period: Option<Period>,
    ) -> Result<Vec<Stored>, StoreError> {
        let mut st = self
            .db
            .prepare(&calls_sql())
            .map_err(fail("cannot read call figures"))?;
        let rows = st
            .query_map(
                params![int(from_ms), int(to_ms), tenant, period.map(Period::name)],
                call_row,
            )
            .map_err(fail("cannot read call figures"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(fail("cannot read call figures"))
    }

    fn move_calls(
        &mut self,
        period: Period,
        before_ms: u64,
        into: &[Stored],
    ) -> Result<(), StoreError> {
        let tx = self.db.transaction().map_err(fail("cannot begin"))?;
        tx.execute(
            "DELETE FROM calls WHERE period = $1 AND start_ms < $2",
            params![period.name(), int(before_ms)],
        )
        .map_err(fail("cannot roll call figures up"))?;
        add_calls(&tx, into).map_err(fail("cannot roll call figures up"))?;
        tx.commit().map_err(fail("cannot commit the roll-up"))
    }
}

/// Whether a subscription numbered `id` is in the store (tests).
#[cfg(test)]
fn has_subscription(s: &Sqlite, id: u64) -> bool {
    use rusqlite::OptionalExtension;
    s.db.query_row(
        "SELECT id FROM subscriptions WHERE id = $1",
        params![int(id)],
        |r| r.get::<_, i64>(0),
    )
    .optional()
    .ok()
    .flatten()
    .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sg-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        dir
    }

    fn entry(id: u64, tenant: &str) -> AuditEntry {
        AuditEntry {
            id,
            at_ms: 1000 + id,
            actor: "admin".into(),
            tenant: Some(tenant.into()),
            action: "test".into(),
            target: "t".into(),
            before: None,
            after: Some("{}".into()),
        }
    }

    #[test]
    fn a_change_is_kept_across_opens_with_its_audit_entry() -> Result<(), StoreError> {
        let path = temp("kept");
        let ops = vec![
            Op::PutTenant(Tenant {
                name: "acme".into(),
                admin_token_sha256: "ab".repeat(32),
            }),
            Op::PutApi(Api {
                tenant: "acme".into(),
                name: "orders".into(),
                routes: vec!["r1".into()],
                visibility: Visibility::Private,
            }),
            Op::PutPlan(Plan {
                tenant: "acme".into(),
                name: "gold".into(),
                rate_per_minute: Some(5),
                routes: vec![],
            }),
            Op::PutConsumer(Consumer {
                tenant: "acme".into(),
                name: "shop".into(),
                plan: Some("gold".into()),
                groups: vec!["g".into()],
                keys_sha256: vec!["cd".repeat(32)],
                jwt_subjects: vec!["u1".into()],
                client_ids: vec![],
            }),
            Op::PutSubscription(Subscription {
                id: 1,
                tenant: "acme".into(),
                consumer: "shop".into(),
                api: "orders".into(),
                state: State::Pending,
                requested_by: "admin".into(),
                requested_at_ms: 5,
                decided_by: None,
                decided_at_ms: None,
            }),
        ];
        let mut want = Catalogue::default();
        for op in &ops {
            super::super::store::apply(&mut want, op);
        }
        want.version = 1;
        {
            let mut s = Sqlite::open(&path)?;
            s.commit(&ops, &entry(1, "acme"))?;
        }
        let mut s = Sqlite::open(&path)?;
        assert_eq!(s.load()?, want);
        assert!(has_subscription(&s, 1));
        // deleting the consumer takes its subscription along, in the store and in memory
        let del = [Op::DeleteConsumer("acme".into(), "shop".into())];
        s.commit(&del, &entry(2, "globex"))?;
        super::super::store::apply(&mut want, &del[0]);
        want.version = 2;
        assert_eq!(s.load()?, want);
        assert!(!has_subscription(&s, 1));
        let acme = s.audit(Some("acme"), 10)?;
        assert_eq!(acme.iter().map(|a| a.id).collect::<Vec<_>>(), [1]);
        assert_eq!(
            s.audit(None, 10)?.iter().map(|a| a.id).collect::<Vec<_>>(),
            [2, 1]
        );
        assert_eq!(s.audit(None, 1)?.len(), 1);
        // an audit number used twice fails the whole transaction: nothing of it is kept
        let again = [Op::DeletePlan("acme".into(), "gold".into())];
        assert!(s.commit(&again, &entry(2, "acme")).is_err());
        assert_eq!(s.load()?, want);
        let _ = std::fs::remove_file(&path);
        Ok(())
    }

    #[test]
    fn a_database_from_a_newer_schema_is_refused() -> Result<(), StoreError> {
        let path = temp("newer");
        drop(Sqlite::open(&path)?);
        let db = Connection::open(&path).map_err(fail("open"))?;
        db.execute(
            "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (99, 0)",
            [],
        )
        .map_err(fail("insert"))?;
        drop(db);
        let err = Sqlite::open(&path).err().map(|e| e.0).unwrap_or_default();
        assert!(err.contains("schema version 99"), "{err}");
        let _ = std::fs::remove_file(&path);
        Ok(())
    }
}
