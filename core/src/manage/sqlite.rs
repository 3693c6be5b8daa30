//! The embedded store: one SQLite file (WAL journal), opened by the management thread only;
//! it runs the statements of `sql.rs` as they are written (SQLite takes `$n` parameters).

use std::path::Path;

use rusqlite::Connection;
use rusqlite::types::{Value, ValueRef};

use super::sql::{Db, SqlStore, Stmt, V};
use super::store::StoreError;

/// How long a write waits for a database another connection has locked.
const BUSY: std::time::Duration = std::time::Duration::from_millis(250);

/// A SQLite connection.
pub struct Sqlite {
    db: Connection,
}

fn fail(what: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError(format!("{what}: {e}"))
}

/// Opens (or makes) the database at `path`, its schema brought up to date.
pub fn open(path: &Path) -> Result<SqlStore<Sqlite>, StoreError> {
    let opened = Connection::open(path);
    let db = opened.map_err(|e| StoreError(format!("cannot open {}: {e}", path.display())))?;
    db.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .map_err(fail("cannot set the journal mode"))?;
    // a database another process holds fails a write within this, instead of holding the
    // management thread (call figures then wait for the next flush)
    db.busy_timeout(BUSY)
        .map_err(fail("cannot set the busy timeout"))?;
    SqlStore::open(Sqlite { db })
}

fn bind(v: &V) -> Value {
    match v {
        V::Int(n) => Value::Integer(*n),
        V::Text(s) => Value::Text(s.clone()),
        V::NullInt | V::NullText => Value::Null,
    }
}

impl Db for Sqlite {
    fn transact(&mut self, stmts: &[Stmt]) -> Result<(), StoreError> {
        let tx = self.db.transaction().map_err(fail("cannot begin"))?;
        for (sql, params) in stmts {
            let mut st = tx.prepare_cached(sql).map_err(fail("cannot write"))?;
            st.execute(rusqlite::params_from_iter(params.iter().map(bind)))
                .map_err(fail("cannot write"))?;
        }
        tx.commit().map_err(fail("cannot commit"))
    }

    fn query(&mut self, sql: &str, params: &[V]) -> Result<Vec<Vec<V>>, StoreError> {
        let mut st = self.db.prepare_cached(sql).map_err(fail("cannot read"))?;
        let n = st.column_count();
        let rows = st
            .query_map(rusqlite::params_from_iter(params.iter().map(bind)), |r| {
                (0..n)
                    .map(|i| {
                        Ok(match r.get_ref(i)? {
                            ValueRef::Integer(n) => V::Int(n),
                            ValueRef::Text(t) => V::Text(String::from_utf8_lossy(t).into_owned()),
                            _ => V::NullText,
                        })
                    })
                    .collect::<rusqlite::Result<Vec<V>>>()
            })
            .map_err(fail("cannot read"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(fail("cannot read"))
    }
}

/// Whether a subscription numbered `id` is in the store (tests).
#[cfg(test)]
fn has_subscription(s: &mut SqlStore<Sqlite>, id: u64) -> bool {
    let id = V::Int(i64::try_from(id).unwrap_or(0));
    s.db()
        .query("SELECT id FROM subscriptions WHERE id = $1", &[id])
        .is_ok_and(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manage::store::{AuditEntry, Op, Store};
    use policy::catalogue::{
        Api, Catalogue, Consumer, Plan, State, Subscription, Tenant, Visibility,
    };

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
                routes: vec!["r1".into()],
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
                quota_per_day: Some(1000),
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
            let mut s = open(&path)?;
            s.commit(&ops, &entry(1, "acme"))?;
        }
        let mut s = open(&path)?;
        assert_eq!(s.load()?, want);
        assert!(has_subscription(&mut s, 1));
        // deleting the consumer takes its subscription along, in the store and in memory
        let del = [Op::DeleteConsumer("acme".into(), "shop".into())];
        s.commit(&del, &entry(2, "globex"))?;
        super::super::store::apply(&mut want, &del[0]);
        want.version = 2;
        assert_eq!(s.load()?, want);
        assert!(!has_subscription(&mut s, 1));
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
    fn call_figures_add_up_roll_up_and_are_forgotten() -> Result<(), StoreError> {
        use crate::calls::{BUCKETS, Sums};
        use crate::manage::analytics::{Period, Retention, roll_up};
        let path = temp("calls");
        let mut s = open(&path)?;
        let row = |start_ms: u64, consumer: &str, count: u64| {
            let latency = [count; BUCKETS];
            let sums = Sums {
                count,
                errors: 1,
                bytes_in: 5,
                bytes_out: 7,
                latency,
            };
            crate::manage::analytics::tests::sample(start_ms, consumer, 2, sums)
        };
        let hour = 3_600_000;
        s.add_calls(&[row(0, "a", 2), row(60_000, "a", 3), row(hour, "b", 1)])?;
        s.add_calls(&[row(0, "a", 5)])?;
        let all = s.calls(None, 0, u64::MAX / 4, None)?;
        let first = all.iter().find(|r| r.start_ms == 0).map(|r| r.sums.clone());
        assert_eq!(
            first.map(|f| (f.count, f.errors, f.latency[13])),
            Some((7, 2, 7)),
            "added into"
        );
        assert_eq!(s.calls(Some("globex"), 0, u64::MAX / 4, None)?.len(), 0);
        assert_eq!(
            s.calls(Some("acme"), 0, hour, Some(Period::Minute))?.len(),
            2
        );
        // two hours on, with minutes kept for an hour: the first hour is rolled up, whole
        let keep = Retention {
            minutes_ms: hour,
            hours_ms: 48 * hour,
            days_ms: 400 * 24 * hour,
        };
        roll_up(&mut s, 2 * hour + 5, &keep)?;
        let mut left: Vec<(Period, u64, u64)> = s
            .calls(None, 0, u64::MAX / 4, None)?
            .iter()
            .map(|r| (r.period, r.start_ms, r.sums.count))
            .collect();
        left.sort_by_key(|l| l.1);
        assert_eq!(left, [(Period::Hour, 0, 10), (Period::Minute, hour, 1)]);
        // far on: everything rolled into days, then forgotten
        roll_up(&mut s, 30 * 24 * hour, &keep)?;
        let mut days: Vec<_> = s
            .calls(None, 0, u64::MAX / 4, None)?
            .iter()
            .map(|r| (r.period, r.start_ms, r.consumer.clone(), r.sums.count))
            .collect();
        days.sort_by_key(|d| d.2.clone());
        // one day row per consumer: a's two minutes and b's one
        let day = |c: &str, n| (Period::Day, 0, c.to_string(), n);
        assert_eq!(days, [day("a", 10), day("b", 1)]);
        roll_up(&mut s, 500 * 24 * hour, &keep)?;
        assert!(s.calls(None, 0, u64::MAX / 4, None)?.is_empty());
        let _ = std::fs::remove_file(&path);
        Ok(())
    }

    #[test]
    fn a_database_from_a_newer_schema_is_refused() -> Result<(), StoreError> {
        let path = temp("newer");
        drop(open(&path)?);
        let db = Connection::open(&path).map_err(fail("open"))?;
        db.execute(
            "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (99, 0)",
            [],
        )
        .map_err(fail("insert"))?;
        drop(db);
        let err = open(&path).err().map(|e| e.0).unwrap_or_default();
        assert!(err.contains("schema version 99"), "{err}");
        let _ = std::fs::remove_file(&path);
        Ok(())
    }
}
