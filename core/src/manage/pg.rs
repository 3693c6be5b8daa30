//! The shared store: PostgreSQL, for fleets whose nodes keep one catalogue. The management
//! thread's own connection (made again when it was lost, each statement bounded by a
//! timeout) runs the statements of `sql.rs` as they are written.

use std::time::Duration;

use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls, Row};

use super::sql::{Db, SqlStore, Stmt, V};
use super::store::StoreError;

/// Time allowed to connect.
const CONNECT: Duration = Duration::from_secs(2);

/// Time allowed for one statement (a server that stalls counts as failing).
const STATEMENT_MS: u32 = 2000;

/// A PostgreSQL connection, made when first needed and again after it was lost.
pub struct Postgres {
    config: postgres::Config,
    client: Option<Client>,
}

fn fail(what: &str) -> impl Fn(postgres::Error) -> StoreError + '_ {
    move |e| match e.as_db_error() {
        Some(db) => StoreError(format!(
            "{what}: {} (SQLSTATE {})",
            db.message(),
            db.code().code()
        )),
        None => StoreError(format!("{what}: {e}")),
    }
}

/// Connects to the server `conninfo` names (`host=… user=… dbname=…` or a URL), with
/// `password` when given, and brings the schema up to date.
pub fn open(conninfo: &str, password: Option<&str>) -> Result<SqlStore<Postgres>, StoreError> {
    let mut config: postgres::Config = conninfo
        .parse()
        .map_err(|e| StoreError(format!("postgres = {conninfo:?}: {e}")))?;
    if let Some(p) = password {
        config.password(p);
    }
    config.connect_timeout(CONNECT);
    SqlStore::open(Postgres {
        config,
        client: None,
    })
}

impl Postgres {
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            let mut c = self
                .config
                .connect(NoTls)
                .map_err(fail("cannot connect to PostgreSQL"))?;
            c.batch_execute(&format!("SET statement_timeout = {STATEMENT_MS}"))
                .map_err(fail("cannot set the statement timeout"))?;
            self.client = Some(c);
        }
        self.client
            .as_mut()
            .ok_or_else(|| StoreError("no connection to PostgreSQL".into()))
    }
}

fn bind(v: &V) -> Box<dyn ToSql + Sync> {
    match v {
        V::Int(n) => Box::new(*n),
        V::Text(s) => Box::new(s.clone()),
        V::NullInt => Box::new(None::<i64>),
        V::NullText => Box::new(None::<String>),
    }
}

fn read(r: &Row, i: usize) -> V {
    let ty = r.columns().get(i).map(|c| c.type_().clone());
    let int = |n: Option<i64>| n.map_or(V::NullText, V::Int);
    match ty {
        Some(Type::INT8) => int(r.try_get::<_, Option<i64>>(i).ok().flatten()),
        Some(Type::INT4) => int(r.try_get::<_, Option<i32>>(i).ok().flatten().map(i64::from)),
        _ => r
            .try_get::<_, Option<String>>(i)
            .ok()
            .flatten()
            .map_or(V::NullText, V::Text),
    }
}

/// Advisory lock keys (any two numbers of our own): writes, and migrations.
const WRITE_LOCK: i64 = 0x5367_0001;

impl Db for Postgres {
    fn session_lock(&self) -> Option<(&'static str, &'static str)> {
        Some((
            "SELECT pg_advisory_lock(1399259138)",
            "SELECT pg_advisory_unlock(1399259138)",
        ))
    }

    fn transact(&mut self, stmts: &[Stmt]) -> Result<(), StoreError> {
        let c = self.client()?;
        let mut tx = c.transaction().map_err(fail("cannot begin"))?;
        // every node's writes one after the other: a roll-up never races another node's
        // roll-up or its added figures, nor two catalogue changes each other
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
            .map_err(fail("cannot take the write lock"))?;
        for (sql, params) in stmts {
            let bound: Vec<Box<dyn ToSql + Sync>> = params.iter().map(bind).collect();
            let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(AsRef::as_ref).collect();
            tx.execute(sql.as_str(), &refs)
                .map_err(fail("cannot write"))?;
        }
        tx.commit().map_err(fail("cannot commit"))
    }

    fn query(&mut self, sql: &str, params: &[V]) -> Result<Vec<Vec<V>>, StoreError> {
        let c = self.client()?;
        let bound: Vec<Box<dyn ToSql + Sync>> = params.iter().map(bind).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(AsRef::as_ref).collect();
        let rows = c.query(sql, &refs).map_err(fail("cannot read"))?;
        Ok(rows
            .iter()
            .map(|r| (0..r.len()).map(|i| read(r, i)).collect())
            .collect())
    }
}
